//! The one `/proc` reader: the aggregator's `process_*` metrics read their own process, the load
//! generator reads the aggregator it started, the lab checks whether a process it started is
//! still alive.
//!
//! The parsers are pure and tested on text. No `sysconf`: `/proc` reports CPU time in `USER_HZ`,
//! which the Linux ABI fixes at 100 on every architecture we ship. Off Linux (or without `/proc`)
//! every figure is `None`.

use std::fmt;

/// `USER_HZ`: clock ticks per second in `/proc` (fixed by the kernel ABI).
const USER_HZ: f64 = 100.0;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// The calling process (`/proc/self`).
    Current,
    /// Another process by PID.
    Pid(u32),
}

impl fmt::Display for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("/proc/self"),
            Self::Pid(p) => write!(f, "/proc/{p}"),
        }
    }
}

/// One reading of a process; a field is `None` when its source was unreadable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` also when unlimited).
    pub max_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// Figures from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `D`, `Z`, …).
    pub state: char,
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
    /// Threads.
    pub threads: u64,
    /// Start time in seconds after boot.
    pub start_after_boot_seconds: f64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
#[must_use]
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest starts at field 3 (state); field N is rest[N - 3].
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    let mut state = f.first()?.chars();
    let (Some(state), None) = (state.next(), state.next()) else {
        return None;
    };
    let utime = num(14)?;
    let stime = num(15)?;
    Some(Stat {
        state,
        cpu_seconds: utime.saturating_add(stime) as f64 / USER_HZ,
        threads: num(20)?,
        start_after_boot_seconds: num(22)? as f64 / USER_HZ,
        virtual_bytes: num(23)?,
    })
}

/// Reads `VmRSS` (in kB) from `/proc/<pid>/status`, as bytes.
#[must_use]
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Reads the soft "Max open files" limit from `/proc/<pid>/limits` (`None` when unlimited).
#[must_use]
pub fn parse_limits_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the boot time (`btime`, seconds since the epoch) from `/proc/stat`.
#[must_use]
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn read_file(p: Proc, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("{p}/{file}")).ok()
}

/// `/proc/<pid>/stat` of `p`, parsed.
#[must_use]
pub fn stat(p: Proc) -> Option<Stat> {
    read_file(p, "stat").as_deref().and_then(parse_stat)
}

/// The resident set size of `p`, bytes.
#[must_use]
pub fn resident_bytes(p: Proc) -> Option<u64> {
    read_file(p, "status").as_deref().and_then(parse_status_rss)
}

/// True while `p` exists and has not finished exiting (a zombie counts as gone).
#[must_use]
pub fn running(p: Proc) -> bool {
    stat(p).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// Reads every figure of `p`.
#[must_use]
pub fn read(p: Proc) -> ProcessStats {
    let stat = stat(p);
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_btime);
    ProcessStats {
        cpu_seconds: stat.map(|s| s.cpu_seconds),
        resident_bytes: resident_bytes(p),
        virtual_bytes: stat.map(|s| s.virtual_bytes),
        threads: stat.map(|s| s.threads),
        open_fds: std::fs::read_dir(format!("{p}/fd"))
            .ok()
            .map(|d| d.count() as u64),
        max_fds: read_file(p, "limits")
            .as_deref()
            .and_then(parse_limits_max_fds),
        start_time_seconds: stat
            .zip(btime)
            .map(|(s, b)| b as f64 + s.start_after_boot_seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 \
                    17 0 123400 987654321 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.state, 'S');
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.threads, 17);
        assert!((s.start_after_boot_seconds - 1234.0).abs() < 1e-9);
        assert_eq!(s.virtual_bytes, 987_654_321);
        assert_eq!(parse_stat("4242 (truncated"), None);
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat("4242 (x) SS 1 2"), None);
    }

    #[test]
    fn status_limits_and_btime() {
        assert_eq!(
            parse_status_rss("Name:\tx\nVmRSS:\t   2048 kB\nThreads: 3\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_status_rss("Name: x\n"), None);
        assert_eq!(parse_status_rss("VmRSS: 99999999999999999999 kB\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_limits_max_fds(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_limits_max_fds(unlimited), None);
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn reads_this_process_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            eprintln!("SKIP reads_this_process_on_linux: no /proc on this system");
            return;
        }
        let p = read(Proc::Current);
        assert!(p.resident_bytes.is_some_and(|b| b > 0), "{p:?}");
        assert!(p.threads.is_some_and(|t| t >= 1), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 1), "{p:?}");
        assert!(running(Proc::Pid(std::process::id())));
        assert!(!running(Proc::Pid(u32::MAX)));
    }
}
