//! Each queue's pool settings on this node: the configuration (`queues.<name>.*`) over the
//! defaults its job kinds declare, sized by the CPUs this process may use, and checked
//! with `db_pool_size` before anything starts. A configuration that cannot work is refused
//! with a message naming its keys.

use super::rule::ScaleRule;
use crate::config::{Config, QueueConfig};
use crate::jobs::QueueKind;
use std::time::Duration;

/// A job running longer is killed, unless `max_run_time` says otherwise.
const DEFAULT_MAX_RUN_TIME: Duration = Duration::from_secs(600);
/// How long a worker stays idle before it leaves, unless `idle_timeout` says otherwise.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long jobs are seen waiting before the pool grows: a wake-up starts a job within
/// milliseconds, so a job still waiting after this has no free worker. Under a burst every
/// job submitted meanwhile joins the backlog, which then lasts as long as the submits keep
/// the database busy: `jobline bench` carried 200 jobs to its end with 100 ms and two steps.
const DEFAULT_SCALE_UP_AFTER: Duration = Duration::from_millis(50);
/// A busy pool may grow from its minimum to its maximum in this many steps unless
/// `scale_up_step` says otherwise: one, so a burst gets the whole pool at once (growth is
/// still bounded by the jobs seen waiting). With four steps of 100 ms `jobline bench`
/// reached the maximum only when its first job had waited 0.46 s.
const DEFAULT_SCALE_UP_STEPS: usize = 1;
/// Idle workers that leave per interval: a gentle descent.
const DEFAULT_SCALE_DOWN_STEP: usize = 1;
/// Most workers of all queues of a node per reader connection (`db_pool_size`): a job
/// has at most one database request at a time, so beyond this many jobs per connection a
/// job's reads wait longer in the readers' queue than they run.
pub const WORKERS_PER_CONNECTION: usize = 16;

/// One queue's pool on this node, ready to start.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// The queue's name.
    pub name: String,
    /// Bounds and pace of its pool.
    pub rule: ScaleRule,
    /// A job running longer is killed.
    pub max_run_time: Duration,
    /// Arbiter threads the workers are spread over: one per CPU at most, so CPU work of
    /// several jobs (gzip, JSON) runs in parallel.
    pub threads: usize,
}

fn bad<T>(key: &str, why: impl std::fmt::Display) -> Result<T, String> {
    Err(format!("invalid configuration: `{key}` {why}"))
}

/// The settings of every queue of `queues` (the job kinds' queues), or what is wrong.
pub fn plan(
    config: &Config,
    queues: &[QueueKind],
    cpus: usize,
) -> Result<Vec<QueueSettings>, String> {
    if let Some(name) = config
        .queues
        .keys()
        .find(|n| !queues.iter().any(|q| q.name == n.as_str()))
    {
        let known: Vec<&str> = queues.iter().map(|q| q.name).collect();
        return bad(
            &format!("queues.{name}"),
            format!("is not a queue of jobline ({})", known.join(", ")),
        );
    }
    let mut planned = Vec::new();
    let mut defaulted_max = Vec::new();
    for q in queues {
        let given = config.queues.get(q.name).cloned().unwrap_or_default();
        let (settings, max_is_default) = queue(q, &given, cpus)?;
        planned.push(settings);
        defaulted_max.push(max_is_default);
    }
    fit_database(config, &mut planned, &defaulted_max)?;
    for s in &mut planned {
        s.threads = cpus.min(s.rule.max_workers).max(1);
        if s.rule.scale_up_step == 0 {
            s.rule.scale_up_step = (s.rule.max_workers / DEFAULT_SCALE_UP_STEPS).max(1);
        }
    }
    Ok(planned)
}

/// One queue's settings, and whether its `max_workers` is the machine's default.
fn queue(q: &QueueKind, given: &QueueConfig, cpus: usize) -> Result<(QueueSettings, bool), String> {
    let key = |field: &str| format!("queues.{}.{field}", q.name);
    if given.workers.is_some() && (given.min_workers.is_some() || given.max_workers.is_some()) {
        return bad(
            &key("workers"),
            format!(
                "pins the pool's size: set either it or `{}`/`{}`",
                key("min_workers"),
                key("max_workers")
            ),
        );
    }
    for (field, d) in [
        ("max_run_time", given.max_run_time),
        ("idle_timeout", given.idle_timeout),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return bad(&key(field), "must be longer than zero");
        }
    }
    for (field, n) in [
        ("scale_up_step", given.scale_up_step),
        ("scale_down_step", given.scale_down_step),
    ] {
        if n == Some(0) {
            return bad(&key(field), "must be at least 1");
        }
    }
    let default_max = (q.pool.max_workers_per_cpu * cpus).max(q.pool.min_workers);
    let max_given = given.workers.or(given.max_workers);
    let min_given = given.workers.or(given.min_workers);
    let max_workers = max_given.unwrap_or_else(|| default_max.max(min_given.unwrap_or(0)));
    let min_workers = min_given.unwrap_or_else(|| q.pool.min_workers.min(max_workers));
    if min_workers > max_workers {
        return bad(
            &key("min_workers"),
            format!(
                "({min_workers}) must not exceed `{}` ({max_workers})",
                key("max_workers")
            ),
        );
    }
    let rule = ScaleRule {
        min_workers,
        max_workers,
        scale_up_after: given.scale_up_after.unwrap_or(DEFAULT_SCALE_UP_AFTER),
        // Filled in once `max_workers` is final (see `plan`); 0 was refused above.
        scale_up_step: given.scale_up_step.unwrap_or(0),
        scale_down_step: given.scale_down_step.unwrap_or(DEFAULT_SCALE_DOWN_STEP),
        idle_timeout: given.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
    };
    let settings = QueueSettings {
        name: q.name.to_string(),
        rule,
        max_run_time: given.max_run_time.unwrap_or(DEFAULT_MAX_RUN_TIME),
        threads: 1,
    };
    Ok((settings, max_given.is_none()))
}

/// Keeps the node's total `max_workers` within what `db_pool_size` serves: default maxima
/// give way (proportionally, not below their minimum); configured ones that do not fit
/// are refused, naming the keys.
fn fit_database(
    config: &Config,
    planned: &mut [QueueSettings],
    defaulted: &[bool],
) -> Result<(), String> {
    let limit = config.db_pool_size as usize * WORKERS_PER_CONNECTION;
    let total = |p: &[QueueSettings]| p.iter().map(|s| s.rule.max_workers).sum::<usize>();
    if total(planned) <= limit {
        return Ok(());
    }
    let fixed: usize = planned
        .iter()
        .zip(defaulted)
        .filter(|(_, d)| !**d)
        .map(|(s, _)| s.rule.max_workers)
        .sum();
    let flexible = total(planned) - fixed;
    let room = limit.saturating_sub(fixed);
    for (s, _) in planned.iter_mut().zip(defaulted).filter(|(_, d)| **d) {
        let r = &mut s.rule;
        let share = (r.max_workers * room).checked_div(flexible).unwrap_or(0);
        r.max_workers = share.max(r.min_workers);
    }
    if total(planned) <= limit {
        return Ok(());
    }
    let parts: Vec<String> = planned
        .iter()
        .map(|s| format!("`queues.{}.max_workers` {}", s.name, s.rule.max_workers))
        .collect();
    Err(format!(
        "invalid configuration: the queues' workers ({}; {} in all) exceed what \
         `db_pool_size` = {} serves ({WORKERS_PER_CONNECTION} workers per connection: {limit}); \
         lower `max_workers`/`min_workers`/`workers` of a queue or raise `db_pool_size`",
        parts.join(", "),
        total(planned),
        config.db_pool_size,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{PoolDefaults, Registry};

    fn kinds() -> Vec<QueueKind> {
        Registry::standard().queues()
    }

    fn with(queue: &str, q: QueueConfig) -> Config {
        let mut c = Config::default();
        c.queues.insert(queue.into(), q);
        c
    }

    #[test]
    fn defaults_follow_the_cpus_and_what_the_kind_waits_on() {
        let two = plan(&Config::default(), &kinds(), 2).unwrap();
        assert_eq!(two[0].name, "snapshots");
        assert_eq!((two[0].rule.min_workers, two[0].rule.max_workers), (1, 64));
        assert_eq!((two[1].rule.min_workers, two[1].rule.max_workers), (1, 32));
        assert_eq!(two[0].threads, 2);
        assert_eq!(two[0].rule.scale_up_step, 64);
        assert_eq!(two[0].rule.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(two[1].max_run_time, DEFAULT_MAX_RUN_TIME);
        let one = plan(&Config::default(), &kinds(), 1).unwrap();
        assert_eq!(one[0].rule.max_workers, 32);
        assert_eq!(one[0].threads, 1);
        // The slowest images request (100 sources that all time out) still ends before
        // the images queue's default max_run_time kills it.
        let c = Config::default();
        let rounds = 100u32.div_ceil(c.image_download_concurrency as u32);
        assert!(c.image_download_timeout * rounds < two[1].max_run_time);
    }

    #[test]
    fn many_cpus_shrink_the_defaults_to_what_the_database_pool_serves() {
        // 64 CPUs: 2048 + 1024 by default, 128 allowed with 8 connections, shared in the
        // same proportion.
        let planned = plan(&Config::default(), &kinds(), 64).unwrap();
        let total: usize = planned.iter().map(|s| s.rule.max_workers).sum();
        assert!(total <= 8 * WORKERS_PER_CONNECTION, "{planned:?}");
        assert_eq!(planned[0].rule.max_workers, 85);
        assert_eq!(planned[1].rule.max_workers, 42);
        // A configured maximum stays; the default one gives way.
        let mut c = with(
            "snapshots",
            QueueConfig {
                max_workers: Some(100),
                ..QueueConfig::default()
            },
        );
        let planned = plan(&c, &kinds(), 64).unwrap();
        assert_eq!(planned[0].rule.max_workers, 100);
        assert_eq!(planned[1].rule.max_workers, 28);
        // Configured maxima that cannot fit are refused, naming the keys.
        c.db_pool_size = 4;
        let e = plan(&c, &kinds(), 2).unwrap_err();
        assert!(e.contains("`db_pool_size` = 4"), "{e}");
        assert!(e.contains("`queues.snapshots.max_workers` 100"), "{e}");
    }

    #[test]
    fn workers_pins_both_bounds() {
        let c = with(
            "images",
            QueueConfig {
                workers: Some(3),
                ..QueueConfig::default()
            },
        );
        let planned = plan(&c, &kinds(), 2).unwrap();
        assert!(planned[1].rule.is_pinned());
        assert_eq!(planned[1].rule.max_workers, 3);
        let none = with(
            "images",
            QueueConfig {
                workers: Some(0),
                ..QueueConfig::default()
            },
        );
        assert_eq!(plan(&none, &kinds(), 2).unwrap()[1].rule.max_workers, 0);
    }

    #[test]
    fn one_bound_given_keeps_the_other_consistent() {
        let low_max = with(
            "snapshots",
            QueueConfig {
                max_workers: Some(0),
                ..QueueConfig::default()
            },
        );
        let r = plan(&low_max, &kinds(), 2).unwrap()[0].rule;
        assert_eq!((r.min_workers, r.max_workers), (0, 0));
        let high_min = with(
            "snapshots",
            QueueConfig {
                min_workers: Some(80),
                ..QueueConfig::default()
            },
        );
        let r = plan(&high_min, &kinds(), 2).unwrap()[0].rule;
        assert_eq!((r.min_workers, r.max_workers), (80, 80));
    }

    #[test]
    fn bad_bounds_are_refused_naming_their_keys() {
        let cases: [(QueueConfig, &str); 6] = [
            (
                QueueConfig {
                    min_workers: Some(5),
                    max_workers: Some(2),
                    ..QueueConfig::default()
                },
                "`queues.snapshots.min_workers` (5) must not exceed `queues.snapshots.max_workers` (2)",
            ),
            (
                QueueConfig {
                    workers: Some(2),
                    max_workers: Some(4),
                    ..QueueConfig::default()
                },
                "`queues.snapshots.workers` pins",
            ),
            (
                QueueConfig {
                    scale_up_step: Some(0),
                    ..QueueConfig::default()
                },
                "`queues.snapshots.scale_up_step` must be at least 1",
            ),
            (
                QueueConfig {
                    scale_down_step: Some(0),
                    ..QueueConfig::default()
                },
                "`queues.snapshots.scale_down_step` must be at least 1",
            ),
            (
                QueueConfig {
                    idle_timeout: Some(Duration::ZERO),
                    ..QueueConfig::default()
                },
                "`queues.snapshots.idle_timeout` must be longer than zero",
            ),
            (
                QueueConfig {
                    max_run_time: Some(Duration::ZERO),
                    ..QueueConfig::default()
                },
                "`queues.snapshots.max_run_time` must be longer than zero",
            ),
        ];
        for (q, expected) in cases {
            let e = plan(&with("snapshots", q), &kinds(), 2).unwrap_err();
            assert!(e.contains(expected), "{e}");
        }
        let e = plan(&with("videos", QueueConfig::default()), &kinds(), 2).unwrap_err();
        assert!(
            e.contains("`queues.videos` is not a queue of jobline (snapshots, images)"),
            "{e}"
        );
    }

    #[test]
    fn a_new_kind_on_a_new_queue_gets_a_pool() {
        let mut queues = kinds();
        queues.push(QueueKind {
            name: "videos",
            pool: PoolDefaults {
                min_workers: 0,
                max_workers_per_cpu: 1,
            },
        });
        let planned = plan(&Config::default(), &queues, 2).unwrap();
        assert_eq!(planned[2].name, "videos");
        assert_eq!(
            (planned[2].rule.min_workers, planned[2].rule.max_workers),
            (0, 2)
        );
    }
}
