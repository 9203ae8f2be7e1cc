#!/usr/bin/env python3
"""Writes seed callback bodies for the `notification` fuzz target into
fuzz/corpus/notification/ (run from the repository root): the bodies of
the scenario recordings in flows/, the notification examples of
Microsoft's reference pages in ../shared/seeds (when present), and a few
shapes the reader must tell apart (legacy Skype body, bare notification,
bare array, resourceData as an array)."""
import glob, hashlib, json, os, re

bodies = []
for path in sorted(glob.glob("flows/**/*.jsonl", recursive=True)):
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line:
            rec = json.loads(line)
            if "body" in rec:
                bodies.append(json.dumps(rec["body"]))

dec = json.JSONDecoder()
for path in sorted(glob.glob("../shared/seeds/*")):
    text = open(path, encoding="utf-8", errors="replace").read()
    for m in re.finditer(r"^\s*\{", text, re.M):
        chunk = re.sub(r",(\s*[}\]])", r"\1", text[m.start():m.start() + 20000].lstrip())
        try:
            obj, _ = dec.raw_decode(chunk)
        except ValueError:
            continue
        s = json.dumps(obj, ensure_ascii=False)
        if "changeType" in s or "commsNotification" in s:
            bodies.append(s)

bodies += [
    '{"id":"x","participants":[{"identity":"29:a","originator":true}],"isMultiparty":false,'
    '"presentedModalityTypes":["audio"],"callState":"incoming"}',
    '{"id":"x","operationOutcome":{"type":"answerOutcome","outcome":"success"},"conversationResult":{},"appState":"s"}',
    '{"changeType":"Updated","resourceUrl":"/communications/calls/c1","resourceData":{"@odata.type":"#microsoft.graph.call","state":"Established"}}',
    '[{"changeType":"deleted","resource":"/app/calls/c2","resourceData":{"state":"terminated","resultInfo":{"code":"200","subCode":5001}}}]',
    '{"value":[{"changeType":"updated","resourceUrl":"/v1.0/communications/calls/c3","resourceData":[{"@odata.type":"#microsoft.graph.call","state":"established"}]}]}',
    '{"value":[{"changeType":"updated","resourceUrl":"/applications/a/calls/c4/operations/o1","resourceData":{"@odata.type":"#microsoft.graph.playPromptOperation","status":"completed"}},7]}',
    '{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/c5/participants","resourceData":[{"@odata.type":"#microsoft.graph.participant","id":"p1","info":{"identity":{"user":{"id":"u"}}}}]}]}',
    '{"value":[]}',
    '\ufeff{"value":{}}',
]
out = os.path.join("fuzz", "corpus", "notification")
os.makedirs(out, exist_ok=True)
seen = set()
for b in bodies:
    data = b.encode()
    name = "seed-" + hashlib.sha1(data).hexdigest()
    if name not in seen:
        seen.add(name)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
print(f"{len(seen)} seeds in {out}")
