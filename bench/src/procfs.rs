//! Reading /proc: machine busy time, a process's CPU time (all its threads) and its memory.
//!
//! Units: /proc/stat and /proc/<pid>/stat count in clock ticks (USER_HZ, 100 on Linux); we convert
//! to seconds with `sysconf(_SC_CLK_TCK)`. The parsers are pure and tested on recorded fixtures.

use std::path::Path;

/// Whole-machine CPU counters from the first (`cpu `) line of /proc/stat, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// user + nice + system + irq + softirq + steal (guest time is already inside user/nice).
    pub busy: u64,
    /// irq + softirq: with IRQ time accounting no process is charged for it. On loopback it is
    /// the network stack carrying the measured traffic, not another process.
    pub irq: u64,
    /// idle + iowait.
    pub idle: u64,
}

pub fn parse_proc_stat(text: &str) -> Result<MachineCpu, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("/proc/stat: no `cpu ` line")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| {
            x.parse::<u64>()
                .map_err(|_| format!("/proc/stat: bad number {x:?}"))
        })
        .collect::<Result<_, _>>()?;
    if v.len() < 8 {
        return Err(format!("/proc/stat: short cpu line {line:?}"));
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    Ok(MachineCpu {
        busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7],
        irq: v[5] + v[6],
        idle: v[3] + v[4],
    })
}

/// utime + stime (ticks) from a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line. The command
/// name may contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_pid_stat(text: &str) -> Result<u64, String> {
    let close = text.rfind(')').ok_or("pid stat: no `)`")?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the comm: state(3) ppid(4) ... utime(14) stime(15) → indices 11 and 12 here.
    let field = |i: usize| -> Result<u64, String> {
        rest.get(i)
            .ok_or_else(|| format!("pid stat: missing field {}", i + 3))?
            .parse::<u64>()
            .map_err(|_| format!("pid stat: bad field {}", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// VmHWM (peak) and VmRSS (current) in KiB from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub peak_kib: u64,
    pub rss_kib: u64,
}

pub fn parse_status(text: &str) -> Result<Memory, String> {
    let kib = |key: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or_else(|| format!("status: no {key}"))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|_| format!("status: bad {line:?}"))
    };
    Ok(Memory {
        peak_kib: kib("VmHWM:")?,
        rss_kib: kib("VmRSS:")?,
    })
}

pub fn ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a constant of the C library.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub fn machine_cpu() -> Result<MachineCpu, String> {
    parse_proc_stat(&read("/proc/stat")?)
}

/// CPU ticks used by a process: the larger of the process line (which also keeps the time of
/// threads that already exited) and the sum over its live threads.
pub fn process_ticks(pid: u32) -> Result<u64, String> {
    let whole = parse_pid_stat(&read(&format!("/proc/{pid}/stat"))?)?;
    let mut threads = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path().join("stat")) {
                threads += parse_pid_stat(&t).unwrap_or(0);
            }
        }
    }
    Ok(whole.max(threads))
}

pub fn memory(pid: u32) -> Result<Memory, String> {
    parse_status(&read(&format!("/proc/{pid}/status"))?)
}

/// Pids of the kernel's softirq threads: loopback traffic is partly processed there, so their
/// time is the benchmark's own, not contamination.
pub fn ksoftirqd_pids() -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
                if comm.starts_with("ksoftirqd/") {
                    v.push(pid);
                }
            }
        }
    }
    v
}

pub fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(Path::new(path)).map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn proc_stat_busy_and_idle() {
        // cpu  22493 0 7898 299686 2548 0 413 267 0 0
        let m = parse_proc_stat(&fixture("proc-stat.txt")).unwrap();
        assert_eq!(m.busy, 22493 + 7898 + 413 + 267);
        assert_eq!(m.irq, 413);
        assert_eq!(m.idle, 299686 + 2548);
        assert!(parse_proc_stat("cpu0 1 2 3").is_err());
        assert!(parse_proc_stat("cpu  1 2 x 4 5 6 7 8").is_err());
        assert!(parse_proc_stat("cpu  1 2 3").is_err());
    }

    #[test]
    fn pid_stat_utime_plus_stime() {
        // haproxy: ... utime 4, stime 0
        assert_eq!(parse_pid_stat(&fixture("proc-pid-stat.txt")).unwrap(), 4);
        // A command name with spaces and a parenthesis does not shift the fields.
        let odd = "42 (a b) c) S 1 1 1 0 -1 0 0 0 0 0 17 5 0 0 20 0 1 0";
        assert_eq!(parse_pid_stat(odd).unwrap(), 22);
        assert!(parse_pid_stat("42 (x) S 1").is_err());
        assert!(parse_pid_stat("no paren").is_err());
    }

    #[test]
    fn status_memory() {
        let m = parse_status(&fixture("proc-pid-status.txt")).unwrap();
        assert!(m.peak_kib >= m.rss_kib && m.rss_kib > 1000, "{m:?}");
        assert!(parse_status("VmRSS: 12 kB\n").is_err());
        assert_eq!(
            parse_status("VmHWM:\t  20 kB\nVmRSS:\t 10 kB\n").unwrap(),
            Memory {
                peak_kib: 20,
                rss_kib: 10
            }
        );
    }
}
