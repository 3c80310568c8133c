//! `/stats/summary` (kubelet `stats/v1alpha1` `Summary`): CPU and memory of
//! the node (`/proc/stat`, `/proc/meminfo`), its image filesystem
//! (`statvfs` of the data directory), and of each running container and pod
//! from their cgroups (v1 `cpuacct.usage`, `memory.usage_in_bytes`,
//! `memory.stat`; v2 `cpu.stat`, `memory.current`, `memory.stat`). The
//! working set is usage minus inactive file pages, as the kubelet (and
//! `kubectl top`) counts it; `usageNanoCores` is the rate since the previous
//! summary of the same object.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// CPU and memory of one cgroup (or the node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory in use, bytes.
    pub memory: Option<u64>,
    /// Inactive file pages (reclaimable), bytes.
    pub inactive_file: Option<u64>,
    /// Anonymous memory, bytes.
    pub rss: Option<u64>,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a `key value` per line file (`memory.stat`, `cpu.stat`).
pub fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| number(v)).flatten()
    })
}

/// The usage of a cgroup whose directories (one per hierarchy on v1) are `dirs`.
pub fn cgroup_usage(dirs: &[PathBuf]) -> Usage {
    let mut usage = Usage::default();
    for dir in dirs {
        if let Some(stat) = read(&dir.join("cpu.stat"))
            && let Some(usec) = field(&stat, "usage_usec")
        {
            usage.cpu_ns = Some(usec * 1000);
        }
        if let Some(ns) = read(&dir.join("cpuacct.usage")).as_deref().and_then(number) {
            usage.cpu_ns = Some(ns);
        }
        let current =
            read(&dir.join("memory.current")).or_else(|| read(&dir.join("memory.usage_in_bytes")));
        if let Some(bytes) = current.as_deref().and_then(number) {
            usage.memory = Some(bytes);
        }
        if let Some(stat) = read(&dir.join("memory.stat")) {
            usage.inactive_file = field(&stat, "inactive_file")
                .or_else(|| field(&stat, "total_inactive_file"))
                .or(usage.inactive_file);
            usage.rss = field(&stat, "anon")
                .or_else(|| field(&stat, "total_rss"))
                .or(usage.rss);
        }
    }
    usage
}

/// The node's CPU time (all CPUs, not idle or waiting) from `/proc/stat`.
pub fn node_cpu_ns(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux: one tick is 10 ms.
    Some((total - idle) * 10_000_000)
}

/// `(total, available)` memory from `/proc/meminfo`, bytes.
pub fn node_memory(meminfo: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some((kib("MemTotal")? * 1024, kib("MemAvailable")? * 1024))
}

/// Rates of cumulative CPU counters, per object, between summaries.
#[derive(Default)]
pub struct Rates {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Rates {
    /// CPU nanoseconds per second (nanocores) of `key` since its previous sample.
    pub fn nano_cores(&self, key: &str, cpu_ns: u64) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let previous = last.insert(key.to_string(), (now, cpu_ns));
        let (at, before) = previous?;
        let elapsed = now.duration_since(at).as_nanos();
        if elapsed == 0 || cpu_ns < before {
            return None;
        }
        u64::try_from(u128::from(cpu_ns - before) * 1_000_000_000 / elapsed).ok()
    }
}

/// The `cpu` and `memory` objects of a summary entry.
pub fn usage_json(usage: &Usage, time: &str, nano_cores: Option<u64>) -> (Value, Value) {
    let mut cpu = json!({"time": time});
    if let Some(ns) = usage.cpu_ns {
        cpu["usageCoreNanoSeconds"] = json!(ns);
    }
    if let Some(rate) = nano_cores {
        cpu["usageNanoCores"] = json!(rate);
    }
    let mut memory = json!({"time": time});
    if let Some(bytes) = usage.memory {
        memory["usageBytes"] = json!(bytes);
        memory["workingSetBytes"] = json!(bytes.saturating_sub(usage.inactive_file.unwrap_or(0)));
    }
    if let Some(rss) = usage.rss {
        memory["rssBytes"] = json!(rss);
    }
    (cpu, memory)
}

/// `capacityBytes`, `availableBytes`, `usedBytes` of the filesystem holding `path`.
pub fn filesystem(path: &Path, time: &str) -> Value {
    match rustix::fs::statvfs(path) {
        Ok(st) => {
            let capacity = st.f_blocks * st.f_frsize;
            let available = st.f_bavail * st.f_frsize;
            let used = (st.f_blocks - st.f_bfree) * st.f_frsize;
            json!({
                "time": time,
                "capacityBytes": capacity,
                "availableBytes": available,
                "usedBytes": used,
                "inodes": st.f_files,
                "inodesFree": st.f_ffree,
                "inodesUsed": st.f_files - st.f_ffree,
            })
        }
        Err(_) => json!({"time": time}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_and_v1_cgroup_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        std::fs::write(v2.join("memory.current"), "4096\n").unwrap();
        std::fs::write(v2.join("memory.stat"), "anon 1024\ninactive_file 1000\n").unwrap();
        let usage = cgroup_usage(&[v2]);
        assert_eq!(usage.cpu_ns, Some(1_500_000));
        assert_eq!(usage.memory, Some(4096));
        let (cpu, memory) = usage_json(&usage, "t", Some(5));
        assert_eq!(cpu["usageNanoCores"], 5);
        assert_eq!(memory["workingSetBytes"], 3096);
        assert_eq!(memory["rssBytes"], 1024);

        let (cpuacct, mem) = (dir.path().join("cpuacct"), dir.path().join("memory"));
        std::fs::create_dir(&cpuacct).unwrap();
        std::fs::create_dir(&mem).unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage"), "777\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "100\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "cache 5\ntotal_rss 60\ntotal_inactive_file 10\n",
        )
        .unwrap();
        let usage = cgroup_usage(&[cpuacct, mem]);
        assert_eq!(
            (usage.cpu_ns, usage.memory, usage.inactive_file, usage.rss),
            (Some(777), Some(100), Some(10), Some(60))
        );
    }

    #[test]
    fn node_counters_come_from_proc() {
        let stat = "cpu  100 0 50 1000 10 0 0 0 0 0\ncpu0 100 0 50 1000 10 0 0 0 0 0\n";
        assert_eq!(node_cpu_ns(stat), Some(150 * 10_000_000));
        let meminfo = "MemTotal:        2048 kB\nMemFree:  100 kB\nMemAvailable:    1024 kB\n";
        assert_eq!(node_memory(meminfo), Some((2048 * 1024, 1024 * 1024)));
    }

    #[test]
    fn rates_need_two_samples() {
        let rates = Rates::default();
        assert_eq!(rates.nano_cores("a", 100), None);
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert!(rates.nano_cores("a", 10_000_100).is_some());
    }
}
