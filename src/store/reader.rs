//! The reader actors: a `SyncArbiter` of `query_actors` threads sharing the connection pool.

use crate::db::{with_pooled, DbConnection, DbPool};
use crate::error::StoreResult;
use actix::prelude::*;

/// A read: runs on a pooled connection and answers its output.
pub trait ReadOp: Send + 'static {
    /// The answer.
    type Output: Send + 'static;
    /// Runs the query; it may run again on another connection when its connection was
    /// lost ([`with_pooled`]).
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output>;
}

/// The message that carries a [`ReadOp`] to the reader pool.
pub struct Read<M: ReadOp>(pub M);

impl<M: ReadOp> Message for Read<M> {
    type Result = StoreResult<M::Output>;
}

/// One reader; the pool of them is started with [`QueryActor::start_pool`].
pub struct QueryActor {
    pool: DbPool,
}

impl QueryActor {
    /// Starts `threads` readers on their own threads.
    pub fn start_pool(pool: DbPool, threads: usize) -> Addr<QueryActor> {
        SyncArbiter::start(threads.max(1), move || QueryActor { pool: pool.clone() })
    }
}

impl Actor for QueryActor {
    type Context = SyncContext<Self>;
}

impl<M: ReadOp> Handler<Read<M>> for QueryActor {
    type Result = StoreResult<M::Output>;

    fn handle(&mut self, msg: Read<M>, _: &mut SyncContext<Self>) -> Self::Result {
        with_pooled(&self.pool, |conn| msg.0.run(conn))
    }
}
