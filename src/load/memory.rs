//! Resident memory of a process, read from Linux's `/proc`.
//!
//! `VmRSS` in `/proc/{pid}/status` is in kibibytes whatever the page size
//! (4 KiB on most x86-64 machines, 16 or 64 KiB on some ARM ones), so no
//! page size is assumed. Elsewhere the figures are `None`. Reads only.

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
pub fn rss_bytes() -> Option<u64> {
    rss_of("self")
}

/// Resident memory of process `pid` (`self` or a number), in bytes.
pub fn rss_of(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss(&text)
}

/// The `VmRSS:` line of a `/proc/{pid}/status` text, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    let factor = match words.next().unwrap_or("kB") {
        "kB" | "KiB" => 1024,
        "mB" | "MB" | "MiB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kibibytes() {
        let status = "Name:\tcallflow\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss(status), Some(12345 * 1024));
        assert_eq!(vm_rss("Name: x\n"), None);
        #[cfg(target_os = "linux")]
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
