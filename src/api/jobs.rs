//! Jobs: accepting a job for an asynchronous endpoint (202), job detail (with `?wait=N`),
//! the jobs list with its filters, and kill.

use super::auth::Tenant;
use super::envelope::{ok, paginator, reply};
use super::error::ApiError;
use super::params::QueryParams;
use super::shoptet::Shape;
use super::AppState;
use crate::db::jobs::{Job, JobFilter};
use crate::error::StoreError;
use crate::model::{ids, time, JobStatus, Micros};
use crate::store::{GetJob, KillJob, ListJobs, SubmitJob};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::time::Duration;

/// Longest `?wait=N`, in seconds.
pub const MAX_WAIT: i64 = 60;
/// Longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found("job-not-found", "Job", id)
}

fn cutoff(state: &AppState) -> Micros {
    time::now() - time::micros(state.config.job_retention)
}

/// The `Idempotency-Key` header, if sent.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => {
            Ok(Some(k.trim().to_string()))
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters."),
        )
        .at("Idempotency-Key")),
    }
}

/// Commits a job of kind `J` with its validated parameters and answers 202 with its id
/// (the same id again for a repeated `Idempotency-Key`). The commit happens before the
/// answer; the job's queue is woken right after.
pub async fn accept<J: crate::jobs::Job>(
    state: &AppState,
    req: &HttpRequest,
    tenant: Tenant,
    job: &J,
) -> Result<HttpResponse, ApiError> {
    let params = serde_json::to_string(job).map_err(ApiError::internal)?;
    let key = idempotency_key(req)?;
    let mut tries = 0;
    let submitted = loop {
        tries += 1;
        let now = time::now();
        let job = Job {
            id: ids::new_job_id(now),
            eshop_id: tenant.eshop_id,
            endpoint: J::ENDPOINT.to_string(),
            queue: J::QUEUE.to_string(),
            status: JobStatus::Pending.as_str().to_string(),
            params: params.clone(),
            creation_time: now,
            started_time: None,
            completion_time: None,
            attempt: 0,
            lease_owner: None,
            lease_expires: None,
            result_secret: ids::new_result_secret(),
            result_ext: None,
            result_content_type: None,
            result_size: None,
            valid_until: None,
            log: String::new(),
        };
        match state
            .store
            .write(SubmitJob {
                job,
                idempotency_key: key.clone(),
            })
            .await
        {
            Err(StoreError::Conflict(_)) if tries < 3 => continue,
            other => break other?,
        }
    };
    Ok(HttpResponse::build(StatusCode::ACCEPTED)
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/system/jobs/{}", submitted.job_id),
        ))
        .json(super::envelope::envelope(
            Some(json!({"jobId": submitted.job_id})),
            None,
        )))
}

/// The job detail of the contract.
fn detail(state: &AppState, job: &Job, now: Micros) -> Value {
    let zone = &state.config.timezone;
    let status = job.status_at(now);
    let duration = match (job.started_time, job.completion_time) {
        (Some(s), Some(c)) if c >= s => Some(format!("{:.3}", (c - s) as f64 / 1e6)),
        _ => None,
    };
    let result_url = (status == JobStatus::Completed).then(|| result_url(state, job));
    json!({
        "jobId": job.id,
        "endpoint": job.endpoint,
        "creationTime": zone.format(job.creation_time),
        "completionTime": job.completion_time.map(|t| zone.format(t)),
        "duration": duration,
        "status": status.as_str(),
        "resultUrl": result_url,
        "validUntil": job.valid_until.map(|t| zone.format(t)),
        "log": (!job.log.is_empty()).then_some(&job.log),
    })
}

/// The jobs list's filters (`status`, `endpoint`, creation and completion times) from the
/// query string; the dashboard's list takes the same.
pub(crate) fn job_filter(state: &AppState, q: &QueryParams) -> Result<JobFilter, ApiError> {
    let statuses = match q.get("status") {
        None => Vec::new(),
        Some(raw) => raw
            .split(',')
            .map(|s| {
                s.trim().parse::<JobStatus>().map_err(|_| {
                    ApiError::invalid_parameter(
                        "status",
                        "`status` must be pending, running, completed, failed, expired or killed.",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let endpoints = state.registry.endpoints();
    let (creation_from, creation_to) = q.time_range("creationTimeFrom", "creationTimeTo")?;
    let (completion_from, completion_to) =
        q.time_range("completionTimeFrom", "completionTimeTo")?;
    Ok(JobFilter {
        statuses,
        endpoint: q.one_of("endpoint", &endpoints)?,
        creation_from,
        creation_to,
        completion_from,
        completion_to,
    })
}

/// Where a completed job's result is served.
pub fn result_url(state: &AppState, job: &Job) -> String {
    format!(
        "{}/api-results/{}-{}.{}",
        state.config.public_url(),
        job.id,
        job.result_secret,
        job.result_ext.as_deref().unwrap_or("bin")
    )
}

async fn read_job(state: &AppState, tenant: Tenant, id: &str) -> Result<Job, ApiError> {
    if !ids::is_job_id(id) {
        return Err(job_not_found(id));
    }
    state
        .store
        .read(GetJob {
            eshop_id: tenant.eshop_id,
            id: id.to_string(),
            cutoff: cutoff(state),
        })
        .await
        .map_err(|e| ApiError::from_store(e, job_not_found(id)))
}

/// `GET /api/system/jobs/{jobId}` with optional `?wait=N`; the detail is `data` itself, or
/// `data.job` in the Shoptet shape.
pub async fn get(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    req: HttpRequest,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let q = QueryParams::parse(&req)?;
    let wait = q.int("wait", 0, MAX_WAIT)?.unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let mut ended = state.events.subscribe_ended();
    loop {
        let job = read_job(&state, tenant, &id).await?;
        let now = time::now();
        if job.status_at(now).is_finished() || tokio::time::Instant::now() >= deadline {
            return Ok(ok(shape.job(detail(&state, &job, now))));
        }
        // The job's end is signalled on every node (`ended`, across nodes by PostgreSQL's
        // `NOTIFY`); the re-read every `poll_interval` only covers a signal that was lost,
        // as the queues' poll does.
        let reread = state.config.poll_interval;
        let poll = tokio::time::sleep(reread.min(deadline - tokio::time::Instant::now()));
        tokio::pin!(poll);
        loop {
            tokio::select! {
                _ = &mut poll => break,
                msg = ended.recv() => match msg {
                    Ok(ended_id) if ended_id != id => continue,
                    _ => break,
                },
            }
        }
    }
}

/// `GET /api/system/jobs` (and with a trailing slash).
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req)?;
    let (page, per_page) = q.pagination(100, 500)?;
    let filter = job_filter(&state, &q)?;
    let (jobs, total) = state
        .store
        .read(ListJobs {
            eshop_id: tenant.eshop_id,
            filter,
            offset: (page - 1) * per_page,
            limit: per_page,
            cutoff: cutoff(&state),
        })
        .await?;
    let now = time::now();
    let zone = &state.config.timezone;
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "jobId": j.id,
                "endpoint": j.endpoint,
                "creationTime": zone.format(j.creation_time),
                "completionTime": j.completion_time.map(|t| zone.format(t)),
                "status": j.status_at(now).as_str(),
                "validUntil": j.valid_until.map(|t| zone.format(t)),
            })
        })
        .collect();
    Ok(ok(json!({
        "jobs": items,
        "paginator": paginator(total, page, per_page, jobs.len()),
    })))
}

/// `DELETE /api/system/jobs/{jobId}`: kills a pending or running job; answers its detail
/// in the request's shape.
pub async fn kill(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if !ids::is_job_id(&id) {
        return Err(job_not_found(&id));
    }
    let job = state
        .store
        .write(KillJob {
            eshop_id: tenant.eshop_id,
            id: id.clone(),
            zone: state.config.timezone,
            cutoff: cutoff(&state),
        })
        .await
        .map_err(|e| match e {
            StoreError::InvalidState(code) => {
                ApiError::new(StatusCode::CONFLICT, code, "The job has already finished.")
                    .at(id.clone())
            }
            other => ApiError::from_store(other, job_not_found(&id)),
        })?;
    state
        .metrics
        .job_ended(&job.endpoint, JobStatus::Killed.as_str());
    Ok(reply(
        StatusCode::OK,
        shape.job(detail(&state, &job, time::now())),
    ))
}
