//! The webhook claim on both backends, under a backlog: oldest due first, never a
//! notification claimed elsewhere and still held, never one not yet due, each once, and
//! the same after enough calls that PostgreSQL plans the statement generically; and on
//! PostgreSQL, a claim and its record read only their rows of a large backlog.

use super::*;
use crate::bench::database::test_server;
use crate::db::migrated_for_tests;
use crate::model::time;

fn insert(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    due: Option<Micros>,
    held: Option<Micros>,
) {
    diesel::insert_into(notifications::table)
        .values((
            notifications::id.eq(id),
            notifications::eshop_id.eq(1),
            notifications::event.eq("job:finished"),
            notifications::event_instance.eq(id),
            notifications::payload.eq("{}"),
            notifications::status.eq(status),
            notifications::next_attempt_at.eq(due),
            notifications::created_at.eq(0),
            notifications::claimed_by.eq(held.map(|_| "other")),
            notifications::claim_expires.eq(held),
        ))
        .execute(conn)
        .unwrap();
}

fn claims_take_the_oldest_due_once(server: Option<&str>) {
    let (_db, conn) = &mut migrated_for_tests(server);
    let now = time::now();
    // A backlog of 400 due notifications, due one microsecond apart, in shuffled order of
    // insertion; among them some held by another node (one claim still running, one run
    // out), some delivered, and one due only later.
    let mut due: Vec<(Micros, String)> = Vec::new();
    for i in 0..400i64 {
        let j = (i * 7919) % 400;
        let id = format!("n{j:04}");
        let at = now - 1_000 + j;
        match j {
            5 => insert(conn, &id, "pending", Some(at), Some(now + time::SECOND)),
            6 => {
                insert(conn, &id, "pending", Some(at), Some(now - 1));
                due.push((at, id));
            }
            7 => insert(conn, &id, "success", None, None),
            _ => {
                insert(conn, &id, "pending", Some(at), None);
                due.push((at, id));
            }
        }
    }
    insert(conn, "later", "pending", Some(now + time::SECOND), None);
    due.sort();
    let mut taken: Vec<String> = Vec::new();
    for limit in [1, 16, 3, 16, 16, 16, 16, 16, 64].iter().cycle() {
        let claimed = claim(conn, "me", *limit, now + time::SECOND, now).unwrap();
        if claimed.is_empty() {
            break;
        }
        assert!(claimed.len() <= *limit as usize);
        let want: Vec<&String> = due[taken.len()..taken.len() + claimed.len()]
            .iter()
            .map(|(_, id)| id)
            .collect();
        let mut got: Vec<String> = claimed.into_iter().map(|d| d.id).collect();
        got.sort();
        let mut want: Vec<String> = want.into_iter().cloned().collect();
        want.sort();
        assert_eq!(got, want, "after {} taken", taken.len());
        taken.extend(got);
    }
    assert_eq!(taken.len(), due.len(), "every due notification once");
    let held: Option<String> = notifications::table
        .find("n0005")
        .select(notifications::claimed_by)
        .first(conn)
        .unwrap();
    assert_eq!(
        held.as_deref(),
        Some("other"),
        "a running claim elsewhere is left alone"
    );
}

#[test]
fn sqlite_claims_take_the_oldest_due_once() {
    claims_take_the_oldest_due_once(None);
}

#[test]
fn postgres_claims_take_the_oldest_due_once() {
    claims_take_the_oldest_due_once(Some(&test_server()));
}

/// What one claimed notification's failed attempt records.
fn failed_attempt(id: &str, now: Micros) -> Attempt {
    Attempt {
        notification_id: id.to_string(),
        node: "me".into(),
        attempt: 1,
        at: now,
        webhook_id: None,
        url: None,
        status_code: None,
        duration_ms: 0,
        error: Some("no active job:finished webhook".into()),
        response_excerpt: None,
        status: "failed",
        next_attempt_at: None,
        disable_webhook: false,
    }
}

/// Under a backlog of 3 000 due notifications, PostgreSQL claims 8 and records them by
/// reading about those 8 rows, with the statements' plans cached while the table was
/// empty, inside transactions and outside them (a round alone in its batch), on a
/// connection set up as the deliveries' writer lane is ([`plan_on_indexes`]).
/// The transaction's own table counters tell what was read
/// (`prepared::assert_reads_by_index`).
/// Planned freely, the claim's update walked `notifications_due` over the whole backlog,
/// and the generic plans read the table whole.
#[test]
fn postgres_claims_and_records_read_only_their_rows() {
    use crate::db::prepared::assert_reads_by_index;
    use diesel::Connection;
    let (_db, conn) = &mut migrated_for_tests(Some(&test_server()));
    plan_on_indexes(conn).unwrap();
    let now = time::now();
    for _ in 0..8 {
        conn.transaction::<_, crate::error::StoreError, _>(|c| {
            assert!(claim(c, "me", 8, now + time::SECOND, now)?.is_empty());
            assert!(record_attempts(c, &[failed_attempt("none", now)])?.is_empty());
            Ok(())
        })
        .unwrap();
        assert!(claim(conn, "me", 8, now + time::SECOND, now)
            .unwrap()
            .is_empty());
        assert!(record_attempts(conn, &[failed_attempt("none", now)])
            .unwrap()
            .is_empty());
    }
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        for i in 0..3000i64 {
            insert(
                c,
                &format!("b{i:05}"),
                "pending",
                Some(now - 3000 + i),
                None,
            );
        }
        Ok(())
    })
    .unwrap();
    let (claimed, recorded) = conn
        .transaction::<_, crate::error::StoreError, _>(|c| {
            assert_reads_by_index(c, "notifications", 64, |c| {
                let claimed = claim(c, "me", 8, now + time::SECOND, now)?;
                let attempts: Vec<Attempt> =
                    claimed.iter().map(|d| failed_attempt(&d.id, now)).collect();
                Ok((claimed.len(), record_attempts(c, &attempts)?.len()))
            })
        })
        .unwrap();
    assert_eq!((claimed, recorded), (8, 8));
}

/// What a PostgreSQL transaction has updated in `notifications`, and how much of it HOT.
#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Updates {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    updated: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    hot: i64,
}

/// On PostgreSQL a delivery claim changes no indexed column of a notification, and the
/// table keeps room on its pages (`fillfactor` 50): a claimed row is updated HOT, on its
/// own page, with no new entry in any of the four indexes. On full pages (the default
/// fillfactor) each claim wrote a new version elsewhere and an entry into every index.
#[test]
fn postgres_delivery_claims_are_hot_updates() {
    use diesel::Connection;
    let (_db, conn) = &mut migrated_for_tests(Some(&test_server()));
    let now = time::now();
    for i in 0..400i64 {
        insert(
            conn,
            &format!("h{i:04}"),
            "pending",
            Some(now - 400 + i),
            None,
        );
    }
    let updates = conn
        .transaction::<_, crate::error::StoreError, _>(|c| {
            assert_eq!(claim(c, "me", 100, now + time::SECOND, now)?.len(), 100);
            let DbConnection::Pg(pg) = c else {
                unreachable!("a PostgreSQL test")
            };
            Ok(diesel::sql_query(
                "SELECT pg_stat_get_xact_tuples_updated('notifications'::regclass) AS updated, \
                    pg_stat_get_xact_tuples_hot_updated('notifications'::regclass) AS hot",
            )
            .get_result::<Updates>(pg)?)
        })
        .unwrap();
    // A page whose every row is claimed at once can run out of room for its last few
    // versions (each is larger than the row it replaces: it gains the node and the end of
    // the claim), so not all 100 need be HOT; on full pages none was.
    assert_eq!(updates.updated, 100);
    assert!(updates.hot >= 90, "{updates:?}");
}
