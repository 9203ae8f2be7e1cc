#!/usr/bin/env python3
"""Writes seed `Authorization` headers for the `token` fuzz target into
fuzz/corpus/token/ (run from the repository root; needs `cryptography`).

Valid tokens are signed with the fuzzing Ed25519 key (seed bytes 0..31,
see FUZZ_JWKS in src/fuzzing.rs); RS256 tokens carry a signature of the
right length that does not verify (the RSA key's private half is gone).
"""
import base64, hashlib, json, os
from cryptography.hazmat.primitives.asymmetric import ed25519

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def part(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
GOOD = {"iss": "https://graph.microsoft.com", "aud": "fuzz-bot", "tid": "fuzz-tenant",
        "exp": 4102444800, "nbf": 1500000000, "iat": 1500000000}

def ed(claims, head=None):
    h = part(head or {"alg": "EdDSA", "typ": "JWT", "kid": "fuzz-ed25519"})
    signing = h + "." + part(claims)
    return signing + "." + b64(KEY.sign(signing.encode()))

def rs(claims, kid="fuzz-rsa"):
    h = part({"alg": "RS256", "typ": "JWT", "kid": kid})
    return h + "." + part(claims) + "." + b64(hashlib.sha512(b"x").digest() * 4)

seeds = [
    "Bearer " + ed(GOOD),
    "bearer  " + ed(dict(GOOD, iss="https://api.botframework.com", aud=["other", "fuzz-bot"])),
    "Bearer " + ed(dict(GOOD, iss="https://evil.example")),
    "Bearer " + ed(dict(GOOD, aud="someone-else")),
    "Bearer " + ed({k: v for k, v in GOOD.items() if k != "tid"}),
    "Bearer " + ed(dict(GOOD, tid="other-tenant")),
    "Bearer " + ed(dict(GOOD, exp=1500000000)),
    "Bearer " + ed(dict(GOOD, nbf=4102444800)),
    "Bearer " + ed({k: v for k, v in GOOD.items() if k != "exp"}),
    "Bearer " + ed(dict(GOOD, exp="tomorrow")),
    "Bearer " + ed(GOOD, {"alg": "EdDSA"}),
    "Bearer " + ed(GOOD, {"alg": "EdDSA", "kid": "unknown"}),
    "Bearer " + rs(GOOD),
    "Bearer " + rs(GOOD, kid="fuzz-ed25519"),
    "Bearer " + part({"alg": "none"}) + "." + part(GOOD) + ".",
    "Bearer " + part({"alg": "HS256", "kid": "fuzz-rsa"}) + "." + part(GOOD) + "." + b64(b"0" * 32),
    "Bearer not.a.jwt",
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "",
]
out = os.path.join("fuzz", "corpus", "token")
os.makedirs(out, exist_ok=True)
for s in seeds:
    data = s.encode()
    with open(os.path.join(out, "seed-" + hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
