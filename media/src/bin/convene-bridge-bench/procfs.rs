//! What the bench reads from `/proc`: CPU time of processes and threads, context switches,
//! and the kernel's UDP receive-buffer drops per socket.
use std::collections::HashSet;

use anyhow::bail;

/// Run time (s) of every thread of `pid` (`self` for the bench) from schedstat: precise,
/// unlike tick-based stat.
pub fn process_cpu_seconds(pid: &str) -> f64 {
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s.split_whitespace().next().and_then(|x| x.parse().ok()).unwrap_or(0);
            }
        }
    }
    total as f64 / 1e9
}

/// Run time (s) of the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0) as f64
        / 1e9
}

/// Voluntary and involuntary context switches of one thread (`/proc/.../status`). A thread
/// blocks once per voluntary switch, so those are its wake-ups; involuntary ones are
/// preemptions (CPU contention), printed apart.
pub fn ctxt_switches(status_path: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(status_path).unwrap_or_default();
    let field =
        |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    (field("voluntary_ctxt_switches:"), field("nonvoluntary_ctxt_switches:"))
}

/// The bridge's media threads: its workers (`convene-media`, one per worker) and, with
/// several, the steering thread (`convene-steer`): the status files to read switches from.
pub fn media_thread_status(pid: u32) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if matches!(comm.trim(), "convene-media" | "convene-steer") {
            out.push(t.path().join("status").to_string_lossy().into_owned());
        }
    }
    if out.is_empty() {
        bail!("no convene-media thread in bridge process {pid}");
    }
    Ok(out)
}

/// Voluntary and involuntary switches summed over threads.
pub fn ctxt_switches_sum(status_paths: &[String]) -> (u64, u64) {
    status_paths.iter().map(|p| ctxt_switches(p)).fold((0, 0), |(a, b), (v, i)| (a + v, b + i))
}

/// Inodes of the sockets `pid` (`self` for the bench) holds open.
fn socket_inodes(pid: &str) -> HashSet<u64> {
    let mut out = HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in dir.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && let Some(n) = link.to_str().and_then(|l| l.strip_prefix("socket:[")?.strip_suffix(']'))
                && let Ok(n) = n.parse()
            {
                out.insert(n);
            }
        }
    }
    out
}

/// Datagrams the kernel dropped at the receive buffers of the UDP sockets of `pid` (the last
/// column of `/proc/net/udp{,6}`): a receiver that fell behind. Loopback loses nothing else.
pub fn udp_drops(pid: &str) -> u64 {
    let inodes = socket_inodes(pid);
    let mut total = 0;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(s) = std::fs::read_to_string(file) else { continue };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if f.len() >= 13
                && f[9].parse().is_ok_and(|i: u64| inodes.contains(&i))
                && let Ok(d) = f[f.len() - 1].parse::<u64>()
            {
                total += d;
            }
        }
    }
    total
}

/// The network namespace's UDP `NoPorts` (datagrams to a port nobody listens on) and
/// `SndbufErrors` (sends refused for a full send buffer) from `/proc/net/snmp`: not per
/// process, so anything else on the machine's loopback counts too.
pub fn udp_snmp() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return (0, 0) };
    let get = |k: &str| {
        names
            .split_whitespace()
            .position(|n| n == k)
            .and_then(|i| values.split_whitespace().nth(i)?.parse().ok())
            .unwrap_or(0)
    };
    (get("NoPorts"), get("SndbufErrors"))
}
