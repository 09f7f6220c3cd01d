//! Node heartbeats: each node writes one row every heartbeat, so the dashboard can list the
//! nodes of a cluster and sum the jobs they ended per minute, without reading the jobs table.

use super::schema::node_heartbeats;
use super::DbConnection;
use crate::error::StoreResult;
use crate::model::Micros;
use diesel::prelude::*;

/// A node's last heartbeat.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = node_heartbeats)]
pub struct NodeBeat {
    /// The node id (`<host>-<pid>-<random>`).
    pub node: String,
    /// When the node started.
    pub started_at: Micros,
    /// Its last heartbeat.
    pub heartbeat_at: Micros,
    /// Jobs it ended per minute: `minute:completed:failed` items, comma-separated (minute =
    /// Unix minutes), as [`crate::metrics::minutes::Minutes::encode`] writes them.
    pub minutes: String,
}

/// Records a node's heartbeat, and forgets nodes silent since `forget_before`.
pub fn beat(
    conn: &mut DbConnection,
    node: &str,
    started_at: Micros,
    now: Micros,
    minutes: &str,
    forget_before: Micros,
) -> StoreResult<()> {
    let n = diesel::update(node_heartbeats::table.find(node))
        .set((
            node_heartbeats::heartbeat_at.eq(now),
            node_heartbeats::minutes.eq(minutes),
        ))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(node_heartbeats::table)
            .values((
                node_heartbeats::node.eq(node),
                node_heartbeats::started_at.eq(started_at),
                node_heartbeats::heartbeat_at.eq(now),
                node_heartbeats::minutes.eq(minutes),
            ))
            .execute(conn)?;
    }
    diesel::delete(node_heartbeats::table.filter(node_heartbeats::heartbeat_at.lt(forget_before)))
        .execute(conn)?;
    Ok(())
}

/// Nodes heard from since `since`, most recent heartbeat first.
pub fn since(conn: &mut DbConnection, since: Micros) -> StoreResult<Vec<NodeBeat>> {
    Ok(node_heartbeats::table
        .filter(node_heartbeats::heartbeat_at.ge(since))
        .order(node_heartbeats::heartbeat_at.desc())
        .select(NodeBeat::as_select())
        .load(conn)?)
}
