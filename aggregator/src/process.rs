//! The standard `process_*` metrics, read from `/proc` on each scrape.
//!
//! Why our own: `prometheus-client` has no process collector, and the aggregator forbids
//! `unsafe`, so there is no `sysconf` call either: `/proc` reports CPU time in `USER_HZ`, which the
//! Linux ABI fixes at 100 on every architecture we ship. The parsers are pure and tested on text;
//! off Linux (or without `/proc`) the metrics are simply left out.

/// `USER_HZ`: clock ticks per second in `/proc` (fixed by the kernel ABI).
const USER_HZ: f64 = 100.0;

/// One reading of the process figures; a field is `None` when its source was unreadable.
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
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// Figures from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
    /// Threads.
    pub threads: u64,
    /// Start time in seconds after boot.
    pub start_after_boot_seconds: f64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
#[must_use]
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest starts at field 3 (state); field N is rest[N - 3].
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    let utime = num(14)?;
    let stime = num(15)?;
    Some(Stat {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        threads: num(20)?,
        start_after_boot_seconds: num(22)? as f64 / USER_HZ,
        virtual_bytes: num(23)?,
    })
}

/// Reads `VmRSS` (in kB) from `/proc/self/status`, as bytes.
#[must_use]
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reads the soft "Max open files" limit from `/proc/self/limits` (`None` when unlimited).
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

/// Reads the current figures of this process.
#[must_use]
pub fn read() -> ProcessStats {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let stat = read("/proc/self/stat").as_deref().and_then(parse_stat);
    let btime = read("/proc/stat").as_deref().and_then(parse_btime);
    ProcessStats {
        cpu_seconds: stat.map(|s| s.cpu_seconds),
        resident_bytes: read("/proc/self/status")
            .as_deref()
            .and_then(parse_status_rss),
        virtual_bytes: stat.map(|s| s.virtual_bytes),
        threads: stat.map(|s| s.threads),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64),
        max_fds: read("/proc/self/limits")
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
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.threads, 17);
        assert!((s.start_after_boot_seconds - 1234.0).abs() < 1e-9);
        assert_eq!(s.virtual_bytes, 987_654_321);
        assert_eq!(parse_stat("4242 (truncated"), None);
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }

    #[test]
    fn status_limits_and_btime() {
        assert_eq!(
            parse_status_rss("Name:\tx\nVmRSS:\t   2048 kB\nThreads: 3\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_status_rss("Name: x\n"), None);
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
            eprintln!("skipping: no /proc on this system");
            return;
        }
        let p = read();
        assert!(p.resident_bytes.is_some_and(|b| b > 0), "{p:?}");
        assert!(p.threads.is_some_and(|t| t >= 1), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 1), "{p:?}");
    }
}
