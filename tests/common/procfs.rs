//! What the benches and tests read from `/proc` about a process: its memory, its open files and
//! the CPU its threads used. One reader, so every figure in the README is read the same way.
//!
//! A standalone file: benches that do not need the rest of `tests/common` include it with
//! `#[path = "../tests/common/procfs.rs"] mod procfs;`.
#![allow(dead_code)] // each test binary and bench uses a different part

use std::collections::HashMap;

/// A process to read: this one, or another by pid.
#[derive(Clone, Copy, Debug)]
pub enum Proc {
    Me,
    Pid(u32),
}

impl Proc {
    fn path(self, what: &str) -> String {
        match self {
            Proc::Me => format!("/proc/self/{what}"),
            Proc::Pid(pid) => format!("/proc/{pid}/{what}"),
        }
    }
}

/// The memory figures of `/proc/<pid>/status`, in KiB (0 when the process is gone).
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn memory(p: Proc) -> Memory {
    let status = std::fs::read_to_string(p.path("status")).unwrap_or_default();
    Memory {
        rss_kib: status_kib(&status, "VmRSS:"),
        hwm_kib: status_kib(&status, "VmHWM:"),
    }
}

/// A `kB` field (`VmRSS:`, `VmHWM:`) of a `/proc/<pid>/status` text, 0 when absent.
pub fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors (0 when the process is gone).
pub fn open_fds(p: Proc) -> usize {
    std::fs::read_dir(p.path("fd")).map_or(0, |d| d.count())
}

/// One thread: its id, its name and the CPU it used so far (utime + stime, in clock ticks).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThreadCpu {
    pub tid: u32,
    pub name: String,
    pub ticks: u64,
}

/// Every live thread of the process, by thread id.
pub fn threads(p: Proc) -> Vec<ThreadCpu> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(p.path("task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = parse_stat(&stat) {
            out.push(ThreadCpu { tid, name, ticks });
        }
    }
    out.sort();
    out
}

/// CPU ticks used so far, per thread name (threads alive now).
pub fn cpu_by_thread_name(p: Proc) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for t in threads(p) {
        *out.entry(t.name).or_insert(0) += t.ticks;
    }
    out
}

/// CPU ticks used so far by the whole process, dead threads included.
pub fn cpu_total(p: Proc) -> u64 {
    std::fs::read_to_string(p.path("stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0, |(_, t)| t)
}

/// `(comm, utime + stime)` from a `/proc/.../stat` line. The name may hold spaces and `)`, so
/// the fields are counted from the last `)`: state is field 3 of the line, utime 14, stime 15.
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// The 1-minute load average, to print beside figures measured on a shared machine.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
