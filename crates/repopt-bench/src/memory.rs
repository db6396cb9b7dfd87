//! Resident memory of this process, from `/proc/self/status` (Linux).

/// Resident set size now (`VmRSS`) and its high-water mark since the process started (`VmHWM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentMemory {
    /// Bytes resident now.
    pub current_bytes: u64,
    /// Most bytes ever resident in this process.
    pub peak_bytes: u64,
}

/// The process's resident memory, or `None` where `/proc/self/status` is not available.
pub fn resident_memory() -> Option<ResidentMemory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(ResidentMemory {
        current_bytes: status_kib(&status, "VmRSS:")? * 1024,
        peak_bytes: status_kib(&status, "VmHWM:")? * 1024,
    })
}

/// The value of a `Name:   1234 kB` line.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_this_process() {
        if let Some(memory) = resident_memory() {
            assert!(memory.peak_bytes >= memory.current_bytes);
            assert!(memory.current_bytes > 0);
        }
    }
}
