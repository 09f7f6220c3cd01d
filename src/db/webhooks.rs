//! Webhook subscriptions: one URL per event per e-shop. Every query is scoped by e-shop,
//! except the dispatcher's [`deactivate`], which names the webhook a delivery went to.

use super::schema::webhooks;
use super::DbConnection;
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::model::Micros;
use diesel::dsl::count_star;
use diesel::prelude::*;

/// A webhook as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct Webhook {
    /// Public id (`wh_…`).
    pub id: String,
    /// Owner.
    pub eshop_id: i64,
    /// The event it subscribes to (`job:finished`).
    pub event: String,
    /// Where deliveries are posted.
    pub url: String,
    /// Whether deliveries go out (false after a 410 or when the e-shop paused it).
    pub active: bool,
    /// When registered.
    pub created_at: Micros,
    /// When last changed.
    pub updated_at: Micros,
}

/// A change to a webhook; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChange {
    /// New URL.
    pub url: Option<String>,
    /// Paused or resumed.
    pub active: Option<bool>,
    /// Always set by an update.
    pub updated_at: Option<Micros>,
}

/// The events an e-shop already has a webhook for.
pub fn registered_events(conn: &mut DbConnection, eshop_id: i64) -> StoreResult<Vec<String>> {
    Ok(webhooks::table
        .filter(webhooks::eshop_id.eq(eshop_id))
        .select(webhooks::event)
        .load(conn)?)
}

/// Inserts a webhook; a second one for the same event of the e-shop is a conflict.
pub fn insert(conn: &mut DbConnection, w: &Webhook) -> StoreResult<()> {
    diesel::insert_into(webhooks::table)
        .values(w)
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("webhook-event-taken")
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// One webhook of one e-shop.
pub fn get(conn: &mut DbConnection, eshop_id: i64, id: &str) -> StoreResult<Webhook> {
    Ok(webhooks::table
        .filter(webhooks::eshop_id.eq(eshop_id))
        .filter(webhooks::id.eq(id))
        .select(Webhook::as_select())
        .first(conn)?)
}

/// One page of an e-shop's webhooks, oldest first, and the total count.
pub fn list(
    conn: &mut DbConnection,
    eshop_id: i64,
    offset: i64,
    limit: i64,
) -> StoreResult<(Vec<Webhook>, i64)> {
    let total: i64 = webhooks::table
        .filter(webhooks::eshop_id.eq(eshop_id))
        .select(count_star())
        .first(conn)?;
    let items = webhooks::table
        .filter(webhooks::eshop_id.eq(eshop_id))
        .order((webhooks::created_at, webhooks::id))
        .offset(offset)
        .limit(limit)
        .select(Webhook::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// Changes a webhook of an e-shop; answers it as it now is.
pub fn update(
    conn: &mut DbConnection,
    eshop_id: i64,
    id: &str,
    change: &WebhookChange,
) -> StoreResult<Webhook> {
    let n = diesel::update(
        webhooks::table
            .filter(webhooks::eshop_id.eq(eshop_id))
            .filter(webhooks::id.eq(id)),
    )
    .set(change)
    .execute(conn)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, eshop_id, id)
}

/// Removes a webhook of an e-shop.
pub fn delete(conn: &mut DbConnection, eshop_id: i64, id: &str) -> StoreResult<()> {
    let n = diesel::delete(
        webhooks::table
            .filter(webhooks::eshop_id.eq(eshop_id))
            .filter(webhooks::id.eq(id)),
    )
    .execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Turns a webhook off because its receiver answered 410 Gone.
pub fn deactivate(conn: &mut DbConnection, id: &str, now: Micros) -> StoreResult<()> {
    diesel::update(webhooks::table.filter(webhooks::id.eq(id)))
        .set((webhooks::active.eq(false), webhooks::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}
