//! What `/proc` tells the bench about processes on this machine: a server's peak memory
//! and CPU time, the bench's own CPU time, and the CPU time of a PostgreSQL server that
//! runs here (the database is most of what a PostgreSQL run costs, and on one machine it
//! shares the cores with the nodes).

/// VmHWM of a process, in kB.
pub(crate) fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = Stat::read(&pid.to_string())?;
    Some(stat.own as f64 / clock_ticks())
}

/// CPU time this process (the bench: client and receiver) has used, in seconds.
pub(crate) fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; zeroed is a valid initial value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The CPU time of a PostgreSQL server on this machine from a starting point on: what a
/// run cost the database.
pub(crate) struct PostgresCpu(Option<f64>);

impl PostgresCpu {
    /// Starts counting; counts nothing when `counted` is false (a SQLite run) or no
    /// PostgreSQL server runs here.
    pub(crate) fn start(counted: bool) -> PostgresCpu {
        PostgresCpu(counted.then(postgres_cpu_seconds).flatten())
    }

    /// Seconds used since the start, if counted.
    pub(crate) fn used(&self) -> Option<f64> {
        Some(postgres_cpu_seconds()? - self.0?)
    }
}

/// CPU time, in seconds, that the PostgreSQL server processes on this machine have used
/// so far: every `postgres` process (backends, WAL writer, checkpointer …), and the
/// backends that have exited, which the postmaster's reaped-children times hold. `None`
/// when no PostgreSQL server runs here (a remote one, or none). Two readings give what a
/// run cost the server, whichever database the work was in.
fn postgres_cpu_seconds() -> Option<f64> {
    let mut ticks = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Some(stat) = Stat::read(pid) else {
            continue;
        };
        if stat.command != "postgres" {
            continue;
        }
        found = true;
        ticks += stat.own;
        // The postmaster is the one whose parent is not PostgreSQL; its children are.
        let parent = Stat::read(&stat.parent.to_string());
        if parent.is_none_or(|p| p.command != "postgres") {
            ticks += stat.reaped_children;
        }
    }
    found.then(|| ticks as f64 / clock_ticks())
}

/// The fields of `/proc/<pid>/stat` the bench reads.
struct Stat {
    /// The executable's name (`comm`).
    command: String,
    /// The parent's pid.
    parent: u32,
    /// utime + stime, in clock ticks.
    own: u64,
    /// cutime + cstime: what the children it has waited for used, in clock ticks.
    reaped_children: u64,
}

impl Stat {
    fn read(pid: &str) -> Option<Stat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name sits in parentheses and may hold spaces or parentheses; the
        // fields after the last `)` start with the state (field 3): the parent is field
        // 4, utime to cstime fields 14 to 17.
        let command = &stat[stat.find('(')? + 1..stat.rfind(')')?];
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
        let number = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
        Some(Stat {
            command: command.to_string(),
            parent: number(4)? as u32,
            own: number(14)? + number(15)?,
            reaped_children: number(16)? + number(17)?,
        })
    }
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_itself_with_its_parent_and_its_cpu() {
        let me = Stat::read("self").expect("/proc/self/stat");
        assert_eq!(me.parent, std::os::unix::process::parent_id());
        assert!(!me.command.is_empty());
        // Burn CPU until the clock shows it (a tick is 10 ms), however busy the machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        let mut later = Stat::read("self").expect("/proc/self/stat");
        while later.own == me.own && std::time::Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            later = Stat::read("self").expect("/proc/self/stat");
        }
        assert!(later.own > me.own, "no CPU time counted: {} ticks", me.own);
    }
}
