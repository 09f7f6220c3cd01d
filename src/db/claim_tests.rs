//! The claim against a model of what it must pick, on both backends: many e-shops, a long
//! backlog with jobs created in the same microsecond, e-shops that already run jobs, and
//! claims of every size until the backlog is gone.

use super::*;
use crate::bench::database::test_server;
use crate::db::{migrated_for_tests, Backend};
use crate::model::time;
use std::collections::HashMap;

/// What a claim must pick: per e-shop its oldest pending jobs up to the cap less what it
/// runs, then the oldest `limit` of those (by creation time, then id).
fn expected(
    pending: &[(Micros, String, i64)],
    running: &HashMap<i64, i64>,
    cap: i64,
    limit: usize,
) -> Vec<String> {
    let mut taken: HashMap<i64, i64> = HashMap::new();
    let mut picked: Vec<&(Micros, String, i64)> = Vec::new();
    for job in pending {
        let n = taken.entry(job.2).or_default();
        if *n + running.get(&job.2).copied().unwrap_or(0) < cap {
            *n += 1;
            picked.push(job);
        }
    }
    let mut ids: Vec<String> = picked
        .into_iter()
        .take(limit)
        .map(|j| j.1.clone())
        .collect();
    ids.sort();
    ids
}

fn claims_match_the_model(server: Option<&str>, cap: i64) {
    let (_db, conn) = &mut migrated_for_tests(server);
    let start = time::now();
    let mut pending: Vec<(Micros, String, i64)> = Vec::new();
    for i in 0..600i64 {
        let mut job = pending_for_tests("snapshots");
        // 12 e-shops, uneven: e-shop 1 holds a third of the backlog; every third job
        // shares its microsecond with the one before.
        job.eshop_id = if i % 3 == 0 { 1 } else { 2 + i % 11 };
        job.creation_time = start + i - (i % 3 == 2) as i64;
        insert(conn, &job, None, time::SECOND).unwrap();
        pending.push((job.creation_time, job.id.clone(), job.eshop_id));
    }
    let mut other = pending_for_tests("images");
    other.creation_time = start - 1;
    insert(conn, &other, None, time::SECOND).unwrap();
    pending.sort();

    let lease = start + 60 * time::SECOND;
    let mut running: HashMap<i64, i64> = HashMap::new();
    let mut claimed_once = std::collections::HashSet::new();
    let mut in_flight: Vec<(String, i64)> = Vec::new();
    for (round, limit) in [1usize, 7, 17, 32, 3, 64, 500].iter().cycle().enumerate() {
        if pending.is_empty() {
            break;
        }
        assert!(round < 400, "the backlog never drained");
        let want = expected(&pending, &running, cap, *limit);
        let got: Vec<String> = claim(conn, "snapshots", "n", *limit as i64, cap, lease, start)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got, want, "round {round}, limit {limit}");
        for id in &got {
            assert!(claimed_once.insert(id.clone()), "{id} claimed twice");
            let at = pending.iter().position(|j| &j.1 == id).unwrap();
            let eshop = pending.remove(at).2;
            *running.entry(eshop).or_default() += 1;
            in_flight.push((id.clone(), eshop));
        }
        // Jobs end between claims: every job of the e-shop that runs most.
        let busiest = running
            .iter()
            .max_by_key(|(e, n)| (**n, -**e))
            .map(|(e, _)| *e);
        in_flight.retain(|(id, eshop)| {
            if Some(*eshop) != busiest {
                return true;
            }
            let end = End {
                id,
                eshop_id: *eshop,
                attempt: 1,
                outcome: &Outcome::Failed,
                log: "",
                zone: &Zone::utc(),
                result_ttl: 0,
                claim: None,
            };
            assert!(super::super::ends::finish_all(conn, &[end]).unwrap()[0].is_some());
            *running.get_mut(eshop).unwrap() -= 1;
            false
        });
    }
    assert_eq!(claimed_once.len(), 600);
    assert_eq!(
        get(conn, 1, &other.id, 0).unwrap().status,
        "pending",
        "another queue's job"
    );
}

/// A cap of 4: it binds for the busiest e-shops (on SQLite, claims rank their candidates
/// whenever the queue's running jobs and the claim could exceed it).
#[test]
fn sqlite_claims_match_the_model() {
    claims_match_the_model(None, 4);
}

#[test]
fn postgres_claims_match_the_model() {
    claims_match_the_model(Some(&test_server()), 4);
}

/// A cap no claim reaches (as `jobline bench` sets it): on SQLite every claim takes the
/// queue's oldest without ranking them.
#[test]
fn sqlite_claims_under_a_cap_out_of_reach_match_the_model() {
    claims_match_the_model(None, 100_000);
}

#[test]
fn postgres_claims_under_a_cap_out_of_reach_match_the_model() {
    claims_match_the_model(Some(&test_server()), 100_000);
}

/// On PostgreSQL: caches the claim's plans while the table is empty (eight claims of
/// nothing, inside transactions as the writer runs them), then inserts `backlog` jobs of 8
/// e-shops in turns, oldest first, each as `shape` leaves it (given its number and a lease
/// end), and claims `limit` under `cap`. The claim must read no row of `jobs` by a scan
/// and at most `at_most` through indexes (`prepared::assert_reads_by_index`); answers how
/// many jobs it claimed.
fn claim_with_plans_cached_on_an_empty_table(
    backlog: i64,
    shape: impl Fn(i64, &mut Job, Micros),
    limit: i64,
    cap: i64,
    at_most: i64,
) -> usize {
    use crate::db::prepared::assert_reads_by_index;
    use diesel::Connection;
    let (_db, conn) = &mut migrated_for_tests(Some(&test_server()));
    let now = time::now();
    let lease = now + 60 * time::SECOND;
    for _ in 0..8 {
        conn.transaction::<_, StoreError, _>(|c| {
            assert!(claim(c, "snapshots", "n", limit, cap, lease, now)?.is_empty());
            Ok(())
        })
        .unwrap();
    }
    conn.transaction::<_, StoreError, _>(|c| {
        for i in 0..backlog {
            let mut job = pending_for_tests("snapshots");
            job.eshop_id = 1 + i % 8;
            job.creation_time = now - backlog + i;
            shape(i, &mut job, lease);
            insert(c, &job, None, time::SECOND)?;
        }
        Ok(())
    })
    .unwrap();
    conn.transaction::<_, StoreError, _>(|c| {
        assert_reads_by_index(c, "jobs", at_most, |c| {
            claim(c, "snapshots", "n", limit, cap, lease, now)
        })
    })
    .unwrap()
    .len()
}

/// The PostgreSQL claim reads only what it claims and its bounded probes, whatever the
/// size of the backlog and of the history: with its plans cached on the empty table, it
/// claims 8 of 3 000 pending jobs of 8 e-shops beside 3 000 finished ones, reading at
/// most 200 rows through indexes (a plan that read the backlog reads 3 000).
#[test]
fn postgres_claim_reads_no_backlog() {
    let finished = |i: i64, job: &mut Job, _: Micros| {
        if i < 3000 {
            job.status = "completed".into();
            job.completion_time = Some(job.creation_time);
        }
    };
    assert_eq!(
        claim_with_plans_cached_on_an_empty_table(6000, finished, 8, 4, 200),
        8
    );
}

/// The running count of each e-shop is read once per e-shop, through `jobs_running`, up to
/// the cap: 8 e-shops with 30 running and 30 pending jobs each, a claim of 16 reads 376
/// rows. As a lateral join beside the candidates the plan counted again for every one of
/// the 128 candidates, each time through `jobs_lease` (every running job): 30 856 rows.
#[test]
fn postgres_claim_counts_running_jobs_once_per_eshop() {
    let running = |i: i64, job: &mut Job, lease: Micros| {
        if i < 240 {
            job.status = "running".into();
            job.attempt = 1;
            job.lease_owner = Some("other".into());
            job.lease_expires = Some(lease);
        }
    };
    assert_eq!(
        claim_with_plans_cached_on_an_empty_table(480, running, 16, 1000, 600),
        16
    );
}

/// The PostgreSQL claim locks only the jobs it claims: while a claim of 1 among 8 e-shops
/// is uncommitted, another transaction can still lock every other pending job. Locking
/// each e-shop's candidates (the oldest min(cap, limit) of each) held 8 here, and wrote a
/// lock record to the WAL for each of them.
#[test]
fn postgres_claim_locks_only_what_it_claims() {
    use diesel::{Connection, PgConnection};
    let (db, conn) = &mut migrated_for_tests(Some(&test_server()));
    let now = time::now();
    for i in 0..32 {
        let mut job = pending_for_tests("snapshots");
        job.eshop_id = 1 + i % 8;
        job.creation_time = now - 32 + i;
        insert(conn, &job, None, time::SECOND).unwrap();
    }
    let other = &mut PgConnection::establish(&db.url).unwrap();
    conn.transaction::<_, StoreError, _>(|c| {
        let claimed = claim(c, "snapshots", "n", 1, 4, now + time::SECOND, now)?;
        assert_eq!(claimed.len(), 1);
        let free: Vec<String> = jobs::table
            .filter(jobs::status.eq("pending"))
            .select(jobs::id)
            .for_update()
            .skip_locked()
            .load(other)?;
        assert_eq!(free.len(), 31, "pending jobs the claim left unlocked");
        assert!(!free.contains(&claimed[0].id));
        Ok(())
    })
    .unwrap();
}

/// A job whose kill is not yet committed is skipped by the PostgreSQL claim, not waited
/// for (the claim's connection gives up on any lock wait after 5 s), and not claimed: once
/// the kill commits, the job is `killed` and nothing runs it. The claim locks only what it
/// picks, so here (a limit of 1, the held job the oldest) it starts nothing.
#[test]
fn postgres_claim_skips_a_job_a_kill_holds() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let (db, conn) = &mut migrated_for_tests(Some(&test_server()));
    let now = time::now();
    let mut held = pending_for_tests("snapshots");
    held.creation_time = now - 2;
    insert(conn, &held, None, time::SECOND).unwrap();
    let mut next = pending_for_tests("snapshots");
    next.creation_time = now - 1;
    insert(conn, &next, None, time::SECOND).unwrap();
    let killer = &mut Backend::from_url(&db.url).unwrap().establish().unwrap();
    killer
        .transaction::<_, StoreError, _>(|k| {
            kill(k, 1, &held.id, &Zone::utc(), 0)?;
            let claimed = conn.transaction::<_, StoreError, _>(|c| {
                c.batch_execute("SET LOCAL lock_timeout = '5s'")?;
                claim(c, "snapshots", "n", 1, 4, now + time::SECOND, now)
            })?;
            assert!(claimed.is_empty(), "{claimed:?}");
            Ok(())
        })
        .unwrap();
    assert_eq!(get(conn, 1, &held.id, 0).unwrap().status, "killed");
    assert_eq!(get(conn, 1, &next.id, 0).unwrap().status, "pending");
}

/// Two nodes' writer transactions that claim the two queues in opposite orders, each
/// holding its first claim's lock until its commit (as a batch does that claims for
/// freed snapshot workers and, by the poll, for idle image workers): the second claims
/// wait for each other unless both queues share one lock. Seen in `jobline bench --nodes
/// 3`: PostgreSQL broke each such cycle after `deadlock_timeout` (1 s) by failing a
/// batch, and the batch's ends and claims with it.
#[test]
fn postgres_claims_of_two_queues_in_opposite_orders_do_not_deadlock() {
    use diesel::Connection;
    let (db, conn) = &mut migrated_for_tests(Some(&test_server()));
    let now = time::now();
    for queue in ["snapshots", "images", "snapshots", "images"] {
        insert(conn, &pending_for_tests(queue), None, time::SECOND).unwrap();
    }
    let lease = now + time::SECOND;
    let connect = || Backend::from_url(&db.url).unwrap().establish().unwrap();
    let mut watcher = connect();
    let mut other = connect();
    let claimed = conn
        .transaction::<_, StoreError, _>(|c| {
            let mut claimed = claim(c, "images", "a", 1, 4, lease, now)?;
            let other_node = std::thread::spawn(move || {
                other.transaction::<_, StoreError, _>(|o| {
                    let mut claimed = claim(o, "snapshots", "b", 1, 4, lease, now)?;
                    claimed.extend(claim(o, "images", "b", 1, 4, lease, now)?);
                    Ok(claimed)
                })
            });
            // Until the other transaction waits for a claim's lock (its first claim's
            // with one lock, its second's with one lock per queue).
            let started = std::time::Instant::now();
            loop {
                #[derive(QueryableByName)]
                struct Waiting {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let waiting: Waiting = diesel::sql_query(
                    "SELECT COUNT(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event = 'advisory'",
                )
                .get_result(&mut watcher)?;
                if waiting.n > 0 {
                    break;
                }
                assert!(
                    started.elapsed().as_secs() < 10,
                    "the other claim never waited"
                );
                std::thread::yield_now();
            }
            claimed.extend(claim(c, "snapshots", "a", 1, 4, lease, now)?);
            Ok((claimed, other_node))
        })
        .map(|(mine, other_node)| (mine, other_node.join().unwrap()))
        .expect("this node's claims");
    let (mine, theirs) = claimed;
    let theirs = theirs.expect("the other node's claims");
    assert_eq!((mine.len(), theirs.len()), (2, 2), "{mine:?} {theirs:?}");
    let jobs_claimed: std::collections::HashSet<_> =
        mine.iter().chain(&theirs).map(|c| &c.id).collect();
    assert_eq!(jobs_claimed.len(), 4);
}
