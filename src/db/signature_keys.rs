//! Webhook signature keys: which keys sign an e-shop's deliveries now, and renewal, where
//! the previous key keeps signing for a grace period so subscribers can switch without
//! losing a delivery.

use super::eshops::insert_signature_key;
use super::schema::signature_keys;
use super::DbConnection;
use crate::error::{StoreError, StoreResult};
use crate::model::Micros;
use diesel::prelude::*;

/// Issues a new key for an e-shop; every key without an end gets one at `now + grace`, and
/// keys whose grace is over are deleted. Answers the new `whsec_…` secret.
pub fn renew(
    conn: &mut DbConnection,
    eshop_id: i64,
    now: Micros,
    grace: Micros,
) -> StoreResult<String> {
    diesel::delete(
        signature_keys::table
            .filter(signature_keys::eshop_id.eq(eshop_id))
            .filter(signature_keys::expires_at.le(now)),
    )
    .execute(conn)?;
    diesel::update(
        signature_keys::table
            .filter(signature_keys::eshop_id.eq(eshop_id))
            .filter(signature_keys::expires_at.is_null()),
    )
    .set(signature_keys::expires_at.eq(Some(now + grace)))
    .execute(conn)?;
    insert_signature_key(conn, eshop_id, now)
}

/// The secrets that sign an e-shop's deliveries at `now`, newest first.
pub fn valid(conn: &mut DbConnection, eshop_id: i64, now: Micros) -> StoreResult<Vec<String>> {
    Ok(signature_keys::table
        .filter(signature_keys::eshop_id.eq(eshop_id))
        .filter(
            signature_keys::expires_at
                .is_null()
                .or(signature_keys::expires_at.gt(now)),
        )
        .order((signature_keys::created_at.desc(), signature_keys::id.desc()))
        .select(signature_keys::secret)
        .load(conn)?)
}

/// The key that signs an e-shop's deliveries now: the newest valid one, as the e-shop got it
/// (from `jobline eshop add`, `GET /api/webhooks/signature-key` or the last renewal).
pub fn current(conn: &mut DbConnection, eshop_id: i64, now: Micros) -> StoreResult<String> {
    valid(conn, eshop_id, now)?
        .into_iter()
        .next()
        .ok_or(StoreError::NotFound)
}
