//! E-shops (tenants), their API tokens (stored hashed) and their webhook signature keys.

use super::schema::{api_tokens, eshops, signature_keys};
use super::DbConnection;
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::model::{ids, time, Micros};
use base64::Engine;
use diesel::prelude::*;
use rand::Rng;

/// An e-shop as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = eshops)]
pub struct Eshop {
    /// The e-shop's numeric id (as in the webhook body's `eshopId`).
    pub id: i64,
    /// A human name.
    pub name: String,
    /// When it was created.
    pub created_at: Micros,
}

/// Creates an e-shop with its first API token and its first signature key; returns the token.
pub fn create(conn: &mut DbConnection, id: i64, name: &str) -> StoreResult<String> {
    conn.transaction(|conn| {
        let now = time::now();
        diesel::insert_into(eshops::table)
            .values((
                eshops::id.eq(id),
                eshops::name.eq(name),
                eshops::created_at.eq(now),
            ))
            .execute(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("eshop-exists")
                } else {
                    e.into()
                }
            })?;
        insert_signature_key(conn, id, now)?;
        issue_token(conn, id)
    })
}

/// Issues one more API token for an existing e-shop.
pub fn issue_token(conn: &mut DbConnection, eshop_id: i64) -> StoreResult<String> {
    let exists: i64 = eshops::table
        .filter(eshops::id.eq(eshop_id))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        return Err(StoreError::NotFound);
    }
    let token = ids::new_api_token();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::token_hash.eq(ids::token_hash(&token)),
            api_tokens::eshop_id.eq(eshop_id),
            api_tokens::created_at.eq(time::now()),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Every e-shop, by id.
pub fn list(conn: &mut DbConnection) -> StoreResult<Vec<Eshop>> {
    Ok(eshops::table
        .select(Eshop::as_select())
        .order(eshops::id)
        .load(conn)?)
}

/// Whether any e-shop exists (a first `serve` creates the demo e-shop otherwise).
pub fn any(conn: &mut DbConnection) -> StoreResult<bool> {
    let n: i64 = eshops::table.count().get_result(conn)?;
    Ok(n > 0)
}

/// The e-shop a token hash belongs to.
pub fn by_token_hash(conn: &mut DbConnection, hash: &str) -> StoreResult<i64> {
    Ok(api_tokens::table
        .filter(api_tokens::token_hash.eq(hash))
        .select(api_tokens::eshop_id)
        .first(conn)?)
}

/// Stores a fresh signing key: `whsec_` + base64 of 32 random bytes.
pub fn insert_signature_key(
    conn: &mut DbConnection,
    eshop_id: i64,
    now: Micros,
) -> StoreResult<String> {
    let bytes: [u8; 32] = rand::rng().random();
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    diesel::insert_into(signature_keys::table)
        .values((
            signature_keys::id.eq(ids::prefixed_id("key")),
            signature_keys::eshop_id.eq(eshop_id),
            signature_keys::secret.eq(&secret),
            signature_keys::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(secret)
}
