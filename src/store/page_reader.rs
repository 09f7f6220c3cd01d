//! Reads the pages of snapshots of whole catalogues (no filter), many at once: a thread
//! takes every page asked for while it was reading, and reads them in one statement
//! ([`products::whole_catalogue_pages`]) and their images in one more
//! ([`images::attach_pages`], only when a page has products), then answers each snapshot.
//!
//! Why: a snapshot of a small catalogue is one page, and reading it through the reader
//! pool cost a round trip to PostgreSQL per job, the largest count of round trips a job
//! paid (docs/benchmarks.md, twelfth session). Under load the asks queue up while a read
//! is in flight and go together in the next; alone, an ask is read at once, as before.
//! [`THREADS`] threads share the asks, so one large page does not hold up every snapshot.

use crate::db::images::{self, ProductWithImages};
use crate::db::products::{self, PageStart};
use crate::db::{with_pooled, Backend, DbPool};
use crate::error::{StoreError, StoreResult};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Reading threads: two, so that a large page read does not stop the others, and few,
/// so that asks wait for a read in flight and go together.
const THREADS: usize = 2;

/// The most pages read in one statement.
const BATCH_MAX: usize = 256;

/// One snapshot's ask for its next page.
struct Ask {
    start: PageStart,
    limit: i64,
    reply: oneshot::Sender<StoreResult<Vec<ProductWithImages>>>,
}

/// The handle snapshots ask for pages through.
#[derive(Clone)]
pub struct PageReader {
    asks: mpsc::Sender<Ask>,
}

impl PageReader {
    /// Starts the reading threads on connections of `pool` (PostgreSQL; SQLite reads
    /// in-process, where a page costs no round trip, and keeps its reader pool).
    pub fn start(pool: DbPool, backend: &Backend) -> Option<PageReader> {
        if !backend.is_postgres() {
            return None;
        }
        let (asks, rx) = mpsc::channel::<Ask>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..THREADS {
            let (pool, rx) = (pool.clone(), rx.clone());
            std::thread::Builder::new()
                .name("page-reader".into())
                .spawn(move || read_loop(&pool, &rx))
                .expect("spawn page reader thread");
        }
        Some(PageReader { asks })
    }

    /// Up to `limit` products (with their images) of the e-shop's whole catalogue after
    /// `start.after`, in (creation time, guid) order.
    pub async fn page(&self, start: PageStart, limit: i64) -> StoreResult<Vec<ProductWithImages>> {
        let (reply, answer) = oneshot::channel();
        self.asks
            .send(Ask {
                start,
                limit,
                reply,
            })
            .map_err(|_| StoreError::Unavailable)?;
        answer.await.unwrap_or(Err(StoreError::Unavailable))
    }
}

fn read_loop(pool: &DbPool, asks: &Mutex<mpsc::Receiver<Ask>>) {
    loop {
        let mut batch = {
            let rx = asks.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        // One statement per page size (snapshots all use one).
        while let Some(limit) = batch.first().map(|a| a.limit) {
            let (same, rest): (Vec<Ask>, Vec<Ask>) =
                batch.into_iter().partition(|a| a.limit == limit);
            batch = rest;
            read_and_answer(pool, same, limit);
        }
    }
}

/// Reads the pages of `asks` (all of page size `limit`) and answers each; a failure (or a
/// panic) is every ask's answer.
fn read_and_answer(pool: &DbPool, asks: Vec<Ask>, limit: i64) {
    let starts: Vec<PageStart> = asks.iter().map(|a| a.start.clone()).collect();
    let read = catch_unwind(AssertUnwindSafe(|| {
        with_pooled(pool, |conn| {
            let pages = products::whole_catalogue_pages(conn, &starts, limit)?;
            images::attach_pages(conn, pages)
        })
    }))
    .unwrap_or_else(|_| {
        log::error!("reading {} snapshot pages panicked", starts.len());
        Err(StoreError::Database(
            "reading snapshot pages panicked".into(),
        ))
    });
    match read {
        Ok(pages) => {
            for (ask, page) in asks.into_iter().zip(pages) {
                let _ = ask.reply.send(Ok(page));
            }
        }
        Err(e) => {
            for ask in asks {
                let _ = ask.reply.send(Err(e.clone()));
            }
        }
    }
}
