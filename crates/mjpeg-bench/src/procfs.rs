//! CPU time and memory of a process, and how busy the machine is, read
//! from Linux's `/proc`.

/// Clock ticks per second in `/proc/PID/stat`. The kernel exports CPU
/// times in USER_HZ, which is 100 on every architecture Linux runs Rust on
/// (it is fixed for the ABI, whatever the kernel's own HZ).
const USER_HZ: f64 = 100.0;

/// User plus system CPU time of process `pid` (all its threads), seconds.
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    cpu_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

pub(crate) fn cpu_seconds_self() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .and_then(|s| cpu_from_stat(&s))
        .unwrap_or(0.0)
}

pub(crate) fn cpu_from_stat(stat: &str) -> std::io::Result<f64> {
    // The command name (field 2) is in parentheses and may hold spaces, so
    // fields are counted from the last ')': state is field 3, utime 14 and
    // stime 15.
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc stat");
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> std::io::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64 / USER_HZ)
            .ok_or_else(bad)
    };
    Ok(tick(11)? + tick(12)?)
}

/// Seconds all cores together spent busy since boot: the first line of
/// `/proc/stat` less idle and iowait.
pub(crate) fn machine_busy_seconds() -> std::io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc/stat");
    let line = stat.lines().next().ok_or_else(bad)?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok(total.saturating_sub(idle) as f64 / USER_HZ)
}

/// Resident memory of process `pid` now and at its peak (VmRSS, VmHWM), MB.
pub fn memory(pid: u32) -> std::io::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((kb("VmRSS:") * 1024.0 / 1e6, kb("VmHWM:") * 1024.0 / 1e6))
}
