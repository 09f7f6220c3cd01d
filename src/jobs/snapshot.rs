//! The products snapshot: every product matching the filters, one JSON line each,
//! gzip-compressed, read and written page by page so memory stays flat whatever the
//! catalogue's size.

use super::gzip::Gzip;
use super::{Job, JobContext, JobRun, PoolDefaults};
use crate::db::products::ProductFilter;
use crate::views;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// Products read per query.
const PAGE: i64 = 500;

/// The job of `GET /api/products/snapshot`: its parameters are the validated filters
/// (stored as the filters' JSON object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct SnapshotJob(pub ProductFilter);

impl Job for SnapshotJob {
    const ENDPOINT: &'static str = "/api/products/snapshot";
    const QUEUE: &'static str = "snapshots";
    /// CPU and database work: JSON and gzip on the worker's thread, and a read per page
    /// and a commit per job, during which the worker waits. Waiting dominates for the
    /// usual small catalogue, so many workers per CPU keep the CPUs and the writer's group
    /// commit busy: on 2 CPUs `jobline bench` on PostgreSQL ran at 2 700–2 900 jobs/s with
    /// 32 workers and 3 400–3 550/s with 64 or 96 set by hand (docs/benchmarks.md, "Seventh
    /// session"); 32 per CPU keeps the default within 90 % of the best. A snapshot holds
    /// about 1.3 MB at its peak whatever the catalogue, so 64 at once stay under 100 MB.
    const POOL: PoolDefaults = PoolDefaults {
        min_workers: 1,
        max_workers_per_cpu: 32,
    };

    fn run(self, ctx: JobContext) -> JobRun {
        let SnapshotJob(filter) = self;
        Box::pin(async move {
            let mut out = ctx.result_writer("jsonl.gz", "application/gzip");
            let mut gz = Gzip::new();
            let mut after = None;
            let mut count = 0usize;
            loop {
                ctx.breakpoints.pass("snapshot:page").await;
                let page = ctx
                    .store
                    .products_page(&filter, after.take(), PAGE)
                    .await
                    .map_err(|e| format!("reading products failed: {e}"))?;
                for p in &page {
                    let line = views::product(&p.product, &p.images, &ctx.config);
                    serde_json::to_writer(&mut gz, &line)
                        .and_then(|_| gz.write_all(b"\n").map_err(serde_json::Error::io))
                        .map_err(|e| format!("writing the snapshot failed: {e}"))?;
                }
                count += page.len();
                let compressed = gz.take();
                out.write(&compressed)
                    .await
                    .map_err(|e| format!("storing the snapshot failed: {e}"))?;
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => {
                        after = Some((last.product.creation_time, last.product.guid.clone()))
                    }
                    _ => break,
                }
            }
            let tail = gz
                .finish()
                .map_err(|e| format!("compressing the snapshot failed: {e}"))?;
            out.write(&tail)
                .await
                .map_err(|e| format!("storing the snapshot failed: {e}"))?;
            let meta = out.finish();
            ctx.log(&format!(
                "snapshot of {count} products, {} bytes",
                meta.size
            ));
            Ok(meta)
        })
    }
}
