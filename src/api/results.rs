//! Result downloads: `GET /api-results/<jobId>-<secret>.<ext>`, no token (the secret is the
//! credential), streamed chunk by chunk from the store.

use super::error::ApiError;
use super::AppState;
use crate::model::{ids, time, JobStatus};
use crate::store::{GetJobForResult, ReadResultChunk, Store};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use subtle::ConstantTimeEq;

fn unknown(file: &str) -> ApiError {
    ApiError::not_found("job-not-found", "Result", file)
}

/// Splits `<jobId>-<secret>.<ext>`.
fn parse(file: &str) -> Option<(&str, &str, &str)> {
    let (id, rest) = file.split_once('-')?;
    let (secret, ext) = rest.split_once('.')?;
    ids::is_job_id(id).then_some((id, secret, ext))
}

/// `GET /api-results/{file}`.
pub async fn download(
    state: web::Data<AppState>,
    file: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let file = file.into_inner();
    let (id, secret, ext) = parse(&file).ok_or_else(|| unknown(&file))?;
    let job = state
        .store
        .read(GetJobForResult {
            id: id.to_string(),
            cutoff: time::now() - time::micros(state.config.job_retention),
        })
        .await
        .map_err(|e| ApiError::from_store(e, unknown(&file)))?;
    let secret_ok: bool = job.result_secret.as_bytes().ct_eq(secret.as_bytes()).into();
    if !secret_ok || job.result_ext.as_deref() != Some(ext) {
        return Err(unknown(&file));
    }
    match job.status_at(time::now()) {
        JobStatus::Completed => {}
        JobStatus::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "result-expired",
                "The result is no longer available (past validUntil).",
            )
            .at(id))
        }
        _ => return Err(unknown(&file)),
    }
    let store = state.store.clone();
    let job_id = job.id.clone();
    let body = futures_util::stream::unfold(Some(0), move |seq| {
        let store: Store = store.clone();
        let job_id = job_id.clone();
        async move {
            let seq = seq?;
            match store.read(ReadResultChunk { id: job_id, seq }).await {
                Ok(Some(bytes)) => Some((Ok(web::Bytes::from(bytes)), Some(seq + 1))),
                Ok(None) => None,
                Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            }
        }
    });
    let mut res = HttpResponse::Ok();
    res.content_type(
        job.result_content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
    )
    .insert_header((
        actix_web::http::header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{}.{}\"", job.id, ext),
    ));
    match job.result_size {
        Some(size) => Ok(res.body(actix_web::body::SizedStream::new(size as u64, body))),
        None => Ok(res.streaming(body)),
    }
}
