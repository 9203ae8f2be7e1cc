//! sim-graph in a child process, for `callflow load`: the same binary's
//! `sim-graph` command on a loopback port it picks (see docs/decisions.md).
//!
//! Starts and stops the child; never talks to it but to read the address
//! it prints.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

/// sim-graph in a child process: this binary's `sim-graph` command, manual
/// clock, on a loopback port it picks and prints. Killed when dropped; it
/// also stops by itself when its standard input closes (this process died).
pub struct SimGraphChild {
    child: Child,
    base: String,
}

impl SimGraphChild {
    /// Starts it.
    ///
    /// # Errors
    ///
    /// A message when the binary cannot be found or sim-graph does not start.
    pub fn spawn() -> Result<Self, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to run sim-graph: {e}"))?;
        let mut child = Command::new(&exe)
            .args([
                "sim-graph",
                "--listen",
                "127.0.0.1:0",
                "--manual-clock",
                "--until-stdin-closes",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start sim-graph ({}): {e}", exe.display()))?;
        let stdout = child.stdout.take();
        let mut sim = SimGraphChild {
            child,
            base: String::new(),
        };
        let mut lines = BufReader::new(stdout.ok_or("sim-graph has no standard output")?);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let Some(addr) = first.trim().strip_prefix("sim-graph listening on ") else {
            return Err(format!("sim-graph did not start (it printed {first:?})"));
        };
        sim.base = format!("http://{addr}");
        // Drain the rest of its banner, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = lines.read_to_end(&mut rest);
        });
        Ok(sim)
    }

    /// Its base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimGraphChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
