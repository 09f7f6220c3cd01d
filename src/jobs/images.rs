//! The product images import: downloads each image of the request (a bounded number at
//! once), keeps those that are JPEG, PNG, GIF or WebP by their bytes, stores each on the
//! product through the store writer (the same name replaces), and writes a JSON result
//! listing what was stored and, per failed image, why. A source that is slow, huge,
//! redirect-looping, not an image or not allowed fails only its own image.

use super::image_download::{download, ImageError, Limits};
use super::{Job, JobContext, JobRun, PoolDefaults};
use crate::db::images::NewImage;
use crate::error::StoreError;
use crate::model::{time, Micros};
use crate::outbound::GuardedClient;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The job of `POST /api/products/{guid}/images`: its parameters are the validated request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagesJob {
    /// The product the images go to.
    pub product_guid: String,
    /// The images, in the request's order (`index` in the result is the position here).
    pub images: Vec<ImageSource>,
}

/// One image to import.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageSource {
    /// Unique within the request and per product.
    pub name: String,
    /// Lower first.
    pub priority: i32,
    /// Free text.
    pub description: Option<String>,
    /// Absolute http(s) URL.
    pub download_url: String,
}

/// What became of one stored image (a line of the result's `data.images`).
struct Stored {
    index: usize,
    name: String,
    md5: String,
    size: i64,
    content_type: &'static str,
    source_url: String,
    created: Micros,
}

/// One image's outcome: stored, or its index and why not.
type Outcome = Result<Stored, (usize, ImageError)>;

impl Job for ImagesJob {
    const ENDPOINT: &'static str = "/api/products/images";
    const QUEUE: &'static str = "images";
    /// Waiting on remote servers: a worker spends nearly all its time on downloads, so
    /// more workers per CPU pay off than for CPU work. Each runs up to
    /// `image_download_concurrency` downloads of up to `image_max_bytes` held in memory,
    /// which is what keeps the number from being larger.
    const POOL: PoolDefaults = PoolDefaults {
        min_workers: 1,
        max_workers_per_cpu: 16,
    };

    fn run(self, ctx: JobContext) -> JobRun {
        let request = self;
        Box::pin(async move {
            let limits = Limits::from_config(&ctx.config);
            let client = limits.client();
            let total = request.images.len();
            let mut outcomes: Vec<Outcome> =
                futures_util::stream::iter(request.images.iter().enumerate())
                    .map(|(index, source)| {
                        import(&ctx, &client, &limits, &request.product_guid, index, source)
                    })
                    .buffer_unordered(ctx.config.image_download_concurrency.max(1))
                    .try_collect()
                    .await?;
            outcomes.sort_by_key(|o| match o {
                Ok(s) => s.index,
                Err((i, _)) => *i,
            });
            let stored = outcomes.iter().filter(|o| o.is_ok()).count();
            if stored == 0 {
                return Err(format!("none of the {total} images could be stored"));
            }
            let result = result_json(&ctx, &outcomes);
            let mut out = ctx.result_writer("json", "application/json");
            let write = async {
                out.write(&serde_json::to_vec(&result).map_err(|e| e.to_string())?)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(out.finish())
            };
            let meta = write
                .await
                .map_err(|e| format!("storing the result failed: {e}"))?;
            ctx.log(&format!("stored {stored} of {total} images"));
            Ok(meta)
        })
    }
}

/// Downloads and stores one image, logging a line either way. Answers `Err` only when
/// the attempt must stop (it no longer holds the job, or the store is going away).
async fn import(
    ctx: &JobContext,
    client: &GuardedClient,
    limits: &Limits,
    product_guid: &str,
    index: usize,
    source: &ImageSource,
) -> Result<Outcome, String> {
    let failed = |e: ImageError| {
        ctx.log(&format!(
            "image {index} `{}`: {}: {}",
            source.name, e.code, e.message
        ));
        Ok(Err((index, e)))
    };
    let image = match download(client, &source.download_url, limits).await {
        Ok(image) => image,
        Err(e) => return failed(e),
    };
    let created = time::now();
    let size = image.bytes.len() as i64;
    let image_row = NewImage {
        product_guid: product_guid.to_string(),
        eshop_id: ctx.job.eshop_id,
        name: source.name.clone(),
        priority: source.priority,
        description: source.description.clone(),
        content_type: image.content_type.to_string(),
        size,
        md5: image.md5.clone(),
        source_url: source.download_url.clone(),
        created,
        data: image.bytes,
    };
    match ctx.store.store_image(image_row).await {
        Ok(()) => {
            ctx.log(&format!(
                "image {index} `{}`: stored, {}, {size} bytes, md5 {}",
                source.name, image.content_type, image.md5
            ));
            Ok(Ok(Stored {
                index,
                name: source.name.clone(),
                md5: image.md5,
                size,
                content_type: image.content_type,
                source_url: source.download_url.clone(),
                created,
            }))
        }
        Err(StoreError::NotFound) => failed(ImageError::new(
            "product-not-found",
            "the product no longer exists",
        )),
        Err(e @ (StoreError::InvalidState(_) | StoreError::Unavailable)) => {
            Err(format!("storing image {index} failed: {e}"))
        }
        Err(e) => {
            log::error!("storing an image of job {} failed: {e}", ctx.job.id);
            failed(ImageError::new(
                "store-failed",
                "the image could not be stored",
            ))
        }
    }
}

/// The result file: stored images by index, and an error per failed image (`null` when
/// every image was stored).
fn result_json(ctx: &JobContext, outcomes: &[Outcome]) -> Value {
    let zone = &ctx.config.timezone;
    let images: Vec<Value> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|s| {
            json!({
                "index": s.index,
                "name": s.name,
                "md5": s.md5,
                "size": s.size,
                "contentType": s.content_type,
                "sourceUrl": s.source_url,
                "created": zone.format(s.created),
            })
        })
        .collect();
    let errors: Vec<Value> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .map(|(index, e)| {
            json!({
                "errorCode": e.code,
                "message": e.message,
                "instance": format!("data.images[{index}]"),
            })
        })
        .collect();
    json!({
        "data": {"images": images},
        "errors": (!errors.is_empty()).then_some(errors),
    })
}
