//! `callflow serve --simulate --keep-running` in a child process, for the
//! tests of `/ui`: its address, admin token, sim-graph and callback, read
//! from what it prints. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running demo server.
pub struct Demo {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin token it printed.
    pub token: String,
    /// sim-graph's base URL.
    pub sim: String,
    /// The callback URI to give sim-graph for new calls.
    pub callback: String,
}

impl Demo {
    /// Starts it on `flows` and waits until its sample calls have ended.
    pub fn start(flows: &Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callflow"))
            .args(["serve", "--simulate", "--keep-running", "--flows"])
            .arg(flows)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("callflow serve starts");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut base, mut token, mut sim, mut callback) = (None, None, None, None);
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!("serve --simulate printed no `still serving` line in 60 s");
                }
            };
            let word = |after: &str| {
                line.split_once(after)
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(|w| w.trim_end_matches(')').to_owned())
            };
            if line.contains("admin API") {
                base = word("admin API").map(|u| u.trim_end_matches("/api/sessions").to_owned());
                token = word("Bearer ");
            } else if line.contains("sim-graph ") && sim.is_none() {
                sim = word("sim-graph");
            } else if line.trim_start().starts_with("callback") {
                callback = word("callback");
            } else if line.contains("still serving") {
                break;
            }
        }
        Demo {
            child,
            base: base.expect("the admin API line"),
            token: token.expect("the admin token"),
            sim: sim.expect("the sim-graph line"),
            callback: callback.expect("the callback line"),
        }
    }

    /// Places a call to `to` through sim-graph; returns its id.
    pub async fn place_call(&self, to: &str) -> String {
        callflow::graph::client::install_tls_provider();
        let v: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/sim/calls", self.sim))
            .json(&serde_json::json!({
                "from": { "phone": "+15550199" },
                "to": { "phone": to },
                "callbackUri": self.callback,
            }))
            .send()
            .await
            .expect("sim-graph answers")
            .json()
            .await
            .expect("JSON");
        v["id"].as_str().expect("a call id").to_owned()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
