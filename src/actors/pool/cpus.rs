//! How many CPUs this process may use: what the scheduler lets it run on
//! (`std::thread::available_parallelism`), capped by a cgroup v2 CPU quota
//! (`/sys/fs/cgroup/cpu.max`, as containers set it), rounded up to whole CPUs.

use std::path::Path;

/// Where cgroup v2 publishes this process's CPU quota.
const CGROUP_CPU_MAX: &str = "/sys/fs/cgroup/cpu.max";

/// The CPUs this process may use, at least 1.
pub fn usable() -> usize {
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let quota = std::fs::read_to_string(Path::new(CGROUP_CPU_MAX))
        .ok()
        .and_then(|s| quota_cpus(&s));
    combine(parallelism, quota)
}

/// The smaller of the two limits, at least 1.
fn combine(parallelism: usize, quota: Option<usize>) -> usize {
    quota.map_or(parallelism, |q| q.min(parallelism)).max(1)
}

/// Whole CPUs of a `cpu.max` line (`"<quota> <period>"` in microseconds, or `"max
/// <period>"` for no limit), rounded up: a quota of 1.5 CPUs can keep 2 workers' threads
/// partly busy.
fn quota_cpus(cpu_max: &str) -> Option<usize> {
    let mut fields = cpu_max.split_whitespace();
    let quota: u64 = fields.next()?.parse().ok()?;
    let period: u64 = fields.next()?.parse().ok()?;
    (period > 0).then(|| quota.div_ceil(period) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_quota_caps_the_parallelism() {
        assert_eq!(quota_cpus("max 100000\n"), None);
        assert_eq!(quota_cpus("200000 100000\n"), Some(2));
        assert_eq!(quota_cpus("150000 100000"), Some(2));
        assert_eq!(quota_cpus("50000 100000"), Some(1));
        assert_eq!(quota_cpus("garbage"), None);
        assert_eq!(combine(8, Some(2)), 2);
        assert_eq!(combine(2, Some(16)), 2);
        assert_eq!(combine(4, None), 4);
        assert_eq!(combine(0, Some(0)), 1);
        assert!(usable() >= 1);
    }
}
