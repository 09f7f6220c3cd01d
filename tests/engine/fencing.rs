//! Store-level guarantees: a completion is accepted only from the attempt that holds the
//! job, lost leases come back, attempts run out, claims are fair between e-shops.

use crate::common::{Backend, TestApp};
use jobline::config::Config;
use jobline::db::jobs::{self, Outcome, ResultMeta};
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
        jobs::recover_lost(&mut conn, later, 3, &zone, 100, false).unwrap(),
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

    assert!(!jobs::finish(&mut conn, &id, 1, &meta(), "", &zone, S).unwrap());
    assert!(
        jobs::renew_leases(&mut conn, "node-a", std::slice::from_ref(&id), later)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        jobs::renew_leases(&mut conn, "node-b", std::slice::from_ref(&id), later).unwrap(),
        vec![(id.clone(), 2)]
    );
    assert!(jobs::finish(&mut conn, &id, 2, &Outcome::Failed, "boom\n", &zone, S).unwrap());
    assert!(!jobs::finish(&mut conn, &id, 2, &meta(), "", &zone, S).unwrap());
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

crate::on_both_backends!(
    stale_attempt_cannot_complete,
    attempts_run_out,
    claims_are_fair_between_eshops
);
