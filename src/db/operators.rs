//! Operators (who may use the dashboard) and their sessions. Tokens and session ids are
//! stored as SHA-256, like the e-shops' API tokens; the tables are separate, so an e-shop
//! token never opens the dashboard and an operator token is never an API token.

use super::schema::{operator_sessions, operators};
use super::DbConnection;
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::model::{ids, time, Micros};
use diesel::prelude::*;

/// An operator as listed (never the token).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operators)]
pub struct Operator {
    /// The name given at `jobline operator add`.
    pub name: String,
    /// When it was added.
    pub created_at: Micros,
}

/// Creates an operator; answers its token, which is shown once and stored only hashed.
pub fn add(conn: &mut DbConnection, name: &str) -> StoreResult<String> {
    let token = ids::new_operator_token();
    diesel::insert_into(operators::table)
        .values((
            operators::name.eq(name),
            operators::token_hash.eq(ids::token_hash(&token)),
            operators::created_at.eq(time::now()),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("operator-exists")
            } else {
                e.into()
            }
        })?;
    Ok(token)
}

/// Every operator, by name.
pub fn list(conn: &mut DbConnection) -> StoreResult<Vec<Operator>> {
    Ok(operators::table
        .select(Operator::as_select())
        .order(operators::name)
        .load(conn)?)
}

/// Removes an operator and, with it, every session it holds.
pub fn remove(conn: &mut DbConnection, name: &str) -> StoreResult<()> {
    conn.transaction(|conn| {
        diesel::delete(operator_sessions::table.filter(operator_sessions::operator.eq(name)))
            .execute(conn)?;
        let n = diesel::delete(operators::table.filter(operators::name.eq(name))).execute(conn)?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    })
}

/// Whether any operator exists (a first `serve` adds one otherwise).
pub fn any(conn: &mut DbConnection) -> StoreResult<bool> {
    let n: i64 = operators::table.count().get_result(conn)?;
    Ok(n > 0)
}

/// A dashboard session as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operator_sessions)]
pub struct Session {
    /// The operator signed in.
    pub operator: String,
    /// The token every form of this session sends back.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: Micros,
}

/// How many expired sessions one sign-in deletes, at most.
const PURGE_BATCH: i64 = 100;

/// Signs in: when `token_hash` is an operator's, stores a new session (under the hash of
/// `session_id`) that ends at `expires_at`, and deletes a batch of expired ones. Answers
/// the operator's name; `NotFound` for a token that is not an operator's.
pub fn sign_in(
    conn: &mut DbConnection,
    token_hash: &str,
    session_id: &str,
    csrf: &str,
    now: Micros,
    expires_at: Micros,
) -> StoreResult<String> {
    let name: String = operators::table
        .filter(operators::token_hash.eq(token_hash))
        .select(operators::name)
        .first(conn)?;
    let expired: Vec<String> = operator_sessions::table
        .filter(operator_sessions::expires_at.lt(now))
        .select(operator_sessions::id_hash)
        .limit(PURGE_BATCH)
        .load(conn)?;
    diesel::delete(operator_sessions::table.filter(operator_sessions::id_hash.eq_any(&expired)))
        .execute(conn)?;
    diesel::insert_into(operator_sessions::table)
        .values((
            operator_sessions::id_hash.eq(ids::token_hash(session_id)),
            operator_sessions::operator.eq(&name),
            operator_sessions::csrf.eq(csrf),
            operator_sessions::created_at.eq(now),
            operator_sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(name)
}

/// The live session whose id hashes to `id_hash`.
pub fn session(conn: &mut DbConnection, id_hash: &str, now: Micros) -> StoreResult<Session> {
    Ok(operator_sessions::table
        .filter(operator_sessions::id_hash.eq(id_hash))
        .filter(operator_sessions::expires_at.ge(now))
        .select(Session::as_select())
        .first(conn)?)
}

/// Ends a session (sign-out).
pub fn sign_out(conn: &mut DbConnection, id_hash: &str) -> StoreResult<()> {
    diesel::delete(operator_sessions::table.filter(operator_sessions::id_hash.eq(id_hash)))
        .execute(conn)?;
    Ok(())
}
