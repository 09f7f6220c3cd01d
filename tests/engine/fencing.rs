//! Store-level guarantees: a completion is accepted only from the attempt that holds the
//! job, lost leases come back, attempts run out, claims are fair between e-shops.

use crate::common::{Backend, TestApp};
use jobline::config::Config;
use jobline::db::ends;
use jobline::db::jobs::{self, End, Outcome, ResultMeta};
use jobline::model::{time, Zone};

const S: i64 = time::SECOND;

fn no_workers(c: &mut Config) {
    for q in ["snapshots", "images"] {
        crate::common::set_workers(c, q, 0);
    }
}

fn meta() -> Outcome {
    Outcome::Completed(ResultMeta {
        ext: "jsonl.gz".into(),
        content_type: "application/gzip".into(),
        size: 0,
        tail: None,
    })
}

async fn stale_attempt_cannot_complete(backend: Backend) {
    let t = TestApp::spawn_with(backend, no_workers).await;
    let id = t.submit_snapshot("").await;
    let mut conn = t.db.connect();
    let zone = Zone::utc();
    let now = time::now();
    let first = jobs::claim(&mut conn, "snapshots", "node-a", 10, 10, now + 30 * S, now).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // node-a goes silent; its lease ends and another node takes the job.
    let later = now + 60 * S;
    assert_eq!(
        jobs::recover_lost(&mut conn, later, 3, &zone, 100, false)
            .unwrap()
            .taken,
        1
    );
    let second = jobs::claim(
        &mut conn,
        "snapshots",
        "node-b",
        10,
        10,
        later + 30 * S,
        later,
    )
    .unwrap();
    assert_eq!(second[0].attempt, 2);

    let eshop = first[0].eshop_id;
    let end_of = |conn: &mut _, attempt, outcome: &Outcome, log| {
        end(conn, eshop, &id, attempt, outcome, log, &zone)
    };
    assert!(!end_of(&mut conn, 1, &meta(), ""));
    assert!(
        jobs::renew_leases(&mut conn, "node-a", std::slice::from_ref(&id), later)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        jobs::renew_leases(&mut conn, "node-b", std::slice::from_ref(&id), later).unwrap(),
        vec![(id.clone(), 2)]
    );
    assert!(end_of(&mut conn, 2, &Outcome::Failed, "boom\n"));
    assert!(!end_of(&mut conn, 2, &meta(), ""));
    assert_eq!(t.notifications_for(&id), 1);
    let job = t.get(&format!("/api/system/jobs/{id}")).await;
    assert_eq!(job.body["data"]["status"], "failed");
    assert!(job.body["data"]["log"]
        .as_str()
        .unwrap()
        .contains("lost its lease"));
}

async fn attempts_run_out(backend: Backend) {
    let t = TestApp::spawn_with(backend, no_workers).await;
    let id = t.submit_snapshot("").await;
    let mut conn = t.db.connect();
    let zone = Zone::utc();
    let mut now = time::now();
    for attempt in 1..=3 {
        let claimed = jobs::claim(&mut conn, "snapshots", "n", 10, 10, now + S, now).unwrap();
        assert_eq!(claimed[0].attempt, attempt);
        now += 2 * S;
        jobs::recover_lost(&mut conn, now, 3, &zone, 100, false).unwrap();
    }
    let job = t.get(&format!("/api/system/jobs/{id}")).await;
    assert_eq!(job.body["data"]["status"], "killed");
    assert!(job.body["data"]["log"]
        .as_str()
        .unwrap()
        .contains("out of attempts"));
    assert_eq!(t.notifications_for(&id), 1);
    assert!(
        jobs::claim(&mut conn, "snapshots", "n", 10, 10, now + S, now)
            .unwrap()
            .is_empty()
    );
}

async fn claims_are_fair_between_eshops(backend: Backend) {
    let t = TestApp::spawn_with(backend, no_workers).await;
    let other = t.add_eshop(2);
    for _ in 0..10 {
        t.submit_snapshot("").await;
    }
    let their_job = t.submit_snapshot_as(&other, "").await;
    let mut conn = t.db.connect();
    let now = time::now();
    let claimed = jobs::claim(&mut conn, "snapshots", "n", 10, 2, now + 30 * S, now).unwrap();
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert!(claimed.iter().any(|j| j.id == their_job));
    assert_eq!(claimed.iter().filter(|j| j.eshop_id == 1).count(), 2);
    // Nothing more for either while both are at their cap.
    let more = jobs::claim(&mut conn, "snapshots", "n", 10, 2, now + 30 * S, now).unwrap();
    assert!(more.is_empty(), "{more:?}");
}

/// A pending snapshot job of `eshop_id` created at `created`.
fn pending_job(eshop_id: i64, created: i64) -> jobs::Job {
    jobs::Job {
        id: jobline::model::ids::new_job_id(created),
        eshop_id,
        endpoint: "/api/products/snapshot".into(),
        queue: "snapshots".into(),
        status: "pending".into(),
        params: "{}".into(),
        creation_time: created,
        started_time: None,
        completion_time: None,
        attempt: 0,
        lease_owner: None,
        lease_expires: None,
        result_secret: jobline::model::ids::new_result_secret(),
        result_ext: None,
        result_content_type: None,
        result_size: None,
        valid_until: None,
        log: String::new(),
    }
}

async fn claims_stay_fair_over_many_eshops_and_a_long_backlog(backend: Backend) {
    let t = TestApp::spawn_with(backend, no_workers).await;
    let mut conn = t.db.connect();
    // 40 e-shops with 100 pending jobs each, created in turns: the k-th job of e-shop e
    // at k * 40 + e, so the oldest 40 jobs are one of each e-shop.
    const ESHOPS: i64 = 40;
    let start = time::now() - 3600 * S;
    use diesel::Connection;
    conn.transaction(|c| {
        for k in 0..100 {
            for e in 1..=ESHOPS {
                let job = pending_job(e, start + k * ESHOPS + e);
                jobs::insert(c, &job, None, S).unwrap();
            }
        }
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
    let now = time::now();
    let claim = |conn: &mut jobline::db::DbConnection, limit, cap| {
        jobs::claim(conn, "snapshots", "n", limit, cap, now + 30 * S, now).unwrap()
    };
    // Oldest first: the first job of e-shops 1 to 30.
    let first = claim(&mut conn, 30, 2);
    let mut shops: Vec<i64> = first.iter().map(|j| j.eshop_id).collect();
    shops.sort();
    assert_eq!(shops, (1..=30).collect::<Vec<_>>());
    // Up to the cap of 2 running per e-shop: one more for e-shops 1 to 30, two for the rest.
    let second = claim(&mut conn, 100, 2);
    assert_eq!(second.len(), 30 + 2 * 10, "{second:?}");
    let mut per_shop = std::collections::HashMap::new();
    for j in first.iter().chain(&second) {
        *per_shop.entry(j.eshop_id).or_insert(0) += 1;
    }
    assert!(per_shop.values().all(|n| *n == 2), "{per_shop:?}");
    assert_eq!(per_shop.len(), ESHOPS as usize);
    // Every e-shop at its cap: nothing, however long the backlog.
    assert!(claim(&mut conn, 100, 2).is_empty());
    // A cap that does not limit: the limit does, oldest first across e-shops (the third
    // job of e-shops 1 to 5).
    let third = claim(&mut conn, 5, 100_000);
    let mut shops: Vec<i64> = third.iter().map(|j| j.eshop_id).collect();
    shops.sort();
    assert_eq!(shops, vec![1, 2, 3, 4, 5], "{third:?}");
    use diesel::prelude::*;
    use jobline::db::schema::jobs::dsl;
    let running: i64 = dsl::jobs
        .filter(dsl::status.eq("running"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(running, 2 * ESHOPS + 5);
    // Each claimed job was the oldest pending job of its e-shop when claimed.
    for j in &third {
        let created: i64 = dsl::jobs
            .find(&j.id)
            .select(dsl::creation_time)
            .first(&mut conn)
            .unwrap();
        assert_eq!(created, start + 2 * ESHOPS + j.eshop_id);
    }
}

/// The queue a job is in, and its creation time.
fn queue_and_creation(conn: &mut jobline::db::DbConnection, id: &str) -> (String, i64) {
    use diesel::prelude::*;
    use jobline::db::schema::jobs::dsl;
    dsl::jobs
        .find(id)
        .select((dsl::queue, dsl::creation_time))
        .first(conn)
        .unwrap()
}

async fn claims_stay_oldest_first_per_queue_after_many_claims_and_finishes(backend: Backend) {
    let t = TestApp::spawn_with(backend, no_workers).await;
    let mut conn = t.db.connect();
    let zone = Zone::utc();
    // E-shops 1 to 4 with 100 snapshot jobs each, and older jobs of the same e-shops in a
    // queue named before it and one named after it: a claim that strayed out of its queue
    // (the PostgreSQL claim walks the claim index by `(queue, eshop_id)`) would take those.
    const ESHOPS: i64 = 4;
    let start = time::now() - 3600 * S;
    let mut created = start;
    let mut at = || {
        created += 1;
        created
    };
    use diesel::Connection;
    conn.transaction(|c| {
        for queue in ["images", "snapshots-z"] {
            for e in 1..=ESHOPS {
                for _ in 0..3 {
                    let job = jobs::Job {
                        queue: queue.into(),
                        ..pending_job(e, at())
                    };
                    jobs::insert(c, &job, None, S).unwrap();
                }
            }
        }
        for _ in 0..100 {
            for e in 1..=ESHOPS {
                jobs::insert(c, &pending_job(e, at()), None, S).unwrap();
            }
        }
        Ok::<_, diesel::result::Error>(())
    })
    .unwrap();
    // Two jobs of e-shop 1 run in another queue: they do not count against its cap here.
    let now = time::now();
    let images = jobs::claim(&mut conn, "images", "n", 2, 2, now + 30 * S, now).unwrap();
    assert_eq!(
        images.iter().map(|j| j.eshop_id).collect::<Vec<_>>(),
        [1, 1]
    );
    // Many rounds of claims and finishes, as workers do: every claim takes, per e-shop, its
    // oldest pending snapshot jobs, never more than the cap, never another queue's.
    let mut next = [0i64; ESHOPS as usize];
    for round in 0..50 {
        let now = time::now();
        let claimed = jobs::claim(&mut conn, "snapshots", "n", 6, 2, now + 30 * S, now).unwrap();
        assert_eq!(claimed.len(), 6, "round {round}: {claimed:?}");
        let mut per_shop = std::collections::HashMap::new();
        let mut by_age: Vec<(i64, i64)> = Vec::new();
        for j in &claimed {
            let (queue, created) = queue_and_creation(&mut conn, &j.id);
            assert_eq!(queue, "snapshots", "round {round}: {j:?}");
            *per_shop.entry(j.eshop_id).or_insert(0) += 1;
            by_age.push((created, j.eshop_id));
        }
        assert!(
            per_shop.values().all(|n| *n <= 2),
            "round {round}: {per_shop:?}"
        );
        by_age.sort();
        for (created, e) in by_age {
            // The k-th snapshot job of e-shop e was created k * ESHOPS + e after the others.
            let k = next[e as usize - 1];
            assert_eq!(
                created,
                start + 24 + k * ESHOPS + e,
                "round {round}, e-shop {e}"
            );
            next[e as usize - 1] += 1;
        }
        for j in &claimed {
            assert!(end(
                &mut conn,
                j.eshop_id,
                &j.id,
                1,
                &Outcome::Failed,
                "",
                &zone
            ));
        }
    }
    // 300 claimed in all, 100 left; the other queues' pending jobs untouched.
    assert_eq!(next.iter().sum::<i64>(), 300);
    let now = time::now();
    let rest = jobs::claim(&mut conn, "snapshots", "n", 100, 100, now + 30 * S, now).unwrap();
    assert_eq!(rest.len(), 100, "{rest:?}");
    let other = jobs::claim(&mut conn, "snapshots-z", "n", 100, 100, now + 30 * S, now).unwrap();
    assert_eq!(other.len(), 3 * ESHOPS as usize);
}

crate::on_both_backends!(
    stale_attempt_cannot_complete,
    attempts_run_out,
    claims_are_fair_between_eshops,
    claims_stay_fair_over_many_eshops_and_a_long_backlog,
    claims_stay_oldest_first_per_queue_after_many_claims_and_finishes
);

/// Ends attempt `attempt` of job `id` as the writer does (a run of one end); answers
/// whether it took effect.
fn end(
    conn: &mut jobline::db::DbConnection,
    eshop_id: i64,
    id: &str,
    attempt: i32,
    outcome: &Outcome,
    log: &str,
    zone: &Zone,
) -> bool {
    let end = End {
        id,
        eshop_id,
        attempt,
        outcome,
        log,
        zone,
        result_ttl: S,
        claim: None,
    };
    ends::finish_all(conn, &[end]).unwrap()[0].is_some()
}
