//! `GET /dashboard/jobs` (every e-shop's jobs with the API's filters and `?q=`, newest
//! first) and `GET /dashboard/jobs/{jobId}` (every field, the whole log, the attempts, the
//! result link while valid, the `job:finished` notifications with each delivery attempt).

use super::attempts::{attempts, Row};
use super::layout::{self, csrf_field, Section};
use super::session::Operator;
use super::{html, DashError, DashResult};
use crate::api::params::QueryParams;
use crate::api::AppState;
use crate::db::dashboard::Search;
use crate::model::{ids, time, JobStatus};
use crate::store::{JobDetail, ListAllJobs};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::html as markup;

/// Jobs on one page of the list.
const PER_PAGE: i64 = 50;

/// Deepest page offered: the list reads at most this many rows past its start.
const MAX_PAGE: i64 = 200;

/// `GET /dashboard/jobs`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
) -> DashResult {
    let q = QueryParams::parse(&req)?;
    let filter = crate::api::jobs::job_filter(&state, &q)?;
    let page = q.int("page", 1, MAX_PAGE)?.unwrap_or(1);
    let text = q.get("q").unwrap_or("").to_string();
    let search = Search::parse(&text);
    let now = time::now();
    let (jobs, total) = match &search {
        Some(search) => {
            state
                .store
                .read(ListAllJobs {
                    filter,
                    search: search.clone(),
                    offset: (page - 1) * PER_PAGE,
                    limit: PER_PAGE + 1,
                    now,
                    cutoff: now - time::micros(state.config.job_retention),
                })
                .await?
        }
        None => (Vec::new(), None),
    };
    let more = jobs.len() as i64 > PER_PAGE && page < MAX_PAGE;
    let zone = state.config.timezone;
    let keep: Vec<(String, String)> = [
        "q",
        "status",
        "endpoint",
        "creationTimeFrom",
        "creationTimeTo",
        "completionTimeFrom",
        "completionTimeTo",
    ]
    .iter()
    .filter_map(|k| q.get(k).map(|v| (k.to_string(), v.to_string())))
    .collect();
    let base_query = serde_urlencoded::to_string(&keep).unwrap_or_default();
    let status = q.get("status").unwrap_or("");
    let endpoint = q.get("endpoint").unwrap_or("");
    let eshop = search.as_ref().and_then(|s| s.eshop_id);
    let body = markup! {
        h1 { "Jobs" }
        form.filters method="get" action="/dashboard/jobs" {
            input type="search" name="q" value=(text) placeholder="job id or e-shop id" aria-label="job id or e-shop id";
            select name="status" aria-label="status" {
                option value="" { "any status" }
                @for st in JobStatus::ALL {
                    option value=(st.as_str()) selected[status == st.as_str()] { (st.as_str()) }
                }
            }
            select name="endpoint" aria-label="endpoint" {
                option value="" { "any endpoint" }
                @for e in state.registry.endpoints() {
                    option value=(e) selected[endpoint == e] { (e) }
                }
            }
            label { "created from " input type="text" name="creationTimeFrom" value=(q.get("creationTimeFrom").unwrap_or("")) placeholder="2026-11-30T08:00:00+0000"; }
            label { "to " input type="text" name="creationTimeTo" value=(q.get("creationTimeTo").unwrap_or("")); }
            label { "completed from " input type="text" name="completionTimeFrom" value=(q.get("completionTimeFrom").unwrap_or("")); }
            label { "to " input type="text" name="completionTimeTo" value=(q.get("completionTimeTo").unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        @if search.is_none() {
            p.error { "Search for a job id (7 letters and digits) or an e-shop id (a number)." }
        }
        @if let Some(total) = total {
            p.meta { (total) " jobs match" @if total.more { " (counted up to " (total.n) ")" } "." }
        }
        @if let Some(eshop) = eshop {
            form.bulk method="post" action="/dashboard/jobs/kill-pending" {
                (csrf_field(&operator))
                input type="hidden" name="eshop" value=(eshop);
                button type="submit" { "Kill all pending jobs of e-shop " (eshop) "…" }
            }
        }
        table.grid.jobs {
            thead { tr { th { "job" } th { "e-shop" } th { "endpoint" } th { "status" } th { "created" } th { "completed" } } }
            tbody {
                @for j in jobs.iter().take(PER_PAGE as usize) {
                    tr {
                        td { a href={ "/dashboard/jobs/" (j.id) } { code { (j.id) } } }
                        td.num { a href={ "/dashboard/jobs?q=" (j.eshop_id) } { (j.eshop_id) } }
                        td { (j.endpoint) }
                        td { (layout::badge(j.status_at(now).as_str())) }
                        td { (zone.format(j.creation_time)) }
                        td { (layout::at(&zone, j.completion_time)) }
                    }
                }
            }
        }
        (layout::pager(&base_query, page, more))
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Jobs", Section::Jobs, &operator, body),
    ))
}

/// `GET /dashboard/jobs/{jobId}`.
pub(crate) async fn detail(
    state: web::Data<AppState>,
    operator: Operator,
    id: web::Path<String>,
) -> DashResult {
    let id = id.into_inner();
    if !ids::is_job_id(&id) {
        return Err(DashError::NotFound);
    }
    let now = time::now();
    let (job, notes) = state
        .store
        .read(JobDetail {
            id: id.clone(),
            cutoff: now - time::micros(state.config.job_retention),
        })
        .await?;
    let zone = state.config.timezone;
    let status = job.status_at(now);
    let result_url =
        (status == JobStatus::Completed).then(|| crate::api::jobs::result_url(&state, &job));
    let duration = match (job.started_time, job.completion_time) {
        (Some(s), Some(e)) => format!("{:.3} s", (e - s) as f64 / time::SECOND as f64),
        _ => "—".into(),
    };
    let started = job.started_time.map(|t| zone.format(t));
    let attempts = attempts(
        &job.log,
        Row {
            attempt: job.attempt,
            started: started.as_deref(),
            running_on: job
                .lease_owner
                .as_deref()
                .filter(|_| status == JobStatus::Running),
        },
    );
    let body = markup! {
        div data-live {
            h1 { "Job " code { (job.id) } " " (layout::badge(status.as_str())) }
            p.meta { "Updated " (zone.format(now)) }
            @if !status.is_finished() {
                form.action method="post" action={ "/dashboard/jobs/" (job.id) "/kill" } {
                    (csrf_field(&operator))
                    button.danger type="submit" { "Kill this job" }
                }
            }
            dl.fields {
                dt { "e-shop" } dd { a href={ "/dashboard/jobs?q=" (job.eshop_id) } { (job.eshop_id) } }
                dt { "endpoint" } dd { (job.endpoint) }
                dt { "queue" } dd { (job.queue) }
                dt { "status" } dd { (status.as_str()) }
                dt { "created" } dd { (zone.format(job.creation_time)) }
                dt { "started (last attempt)" } dd { (layout::at(&zone, job.started_time)) }
                dt { "completed" } dd { (layout::at(&zone, job.completion_time)) }
                dt { "duration" } dd { (duration) }
                dt { "attempts" } dd { (job.attempt) }
                dt { "lease held by" } dd { (job.lease_owner.as_deref().unwrap_or("—")) }
                dt { "lease until" } dd { (layout::at(&zone, job.lease_expires)) }
                dt { "valid until" } dd { (layout::at(&zone, job.valid_until)) }
                dt { "result" } dd {
                    @match &result_url {
                        Some(url) => { a href=(url) rel="noreferrer" { "download" } " (" (job.result_size.unwrap_or(0)) " bytes, " (job.result_content_type.as_deref().unwrap_or("")) ")" }
                        None => "—",
                    }
                }
                dt { "request" } dd { code.params { (job.params) } }
            }
            h2 { "Attempts" }
            @if attempts.is_empty() { p { "None yet." } }
            @else {
                table.grid.job-attempts {
                    thead { tr { th { "#" } th { "node" } th { "started" } th { "ended" } th { "outcome" } } }
                    tbody {
                        @for a in &attempts {
                            tr {
                                td.num { @match a.number { Some(n) => (n), None => "—" } }
                                td { (a.node.as_deref().unwrap_or("—")) }
                                td { (a.start.as_deref().unwrap_or("—")) }
                                td { (a.end.as_deref().unwrap_or("—")) }
                                td { (a.outcome) }
                            }
                        }
                    }
                }
            }
            h2 { "Log" }
            pre.log { (job.log) }
            h2 { "job:finished notifications" }
            @if notes.is_empty() { p { "None yet: one is recorded when the job ends." } }
            @for (n, attempts) in &notes {
                section.notification {
                    h3 { code { (n.id) } " " (layout::badge(&n.status)) }
                    p.meta {
                        (n.attempts) " attempts · to " (n.url.as_deref().unwrap_or("(no webhook yet)"))
                        @if let Some(t) = n.next_attempt_at { " · next attempt " (zone.format(t)) }
                    }
                    form.action method="post" action={ "/dashboard/notifications/" (n.id) "/redeliver" } {
                        (csrf_field(&operator))
                        input type="hidden" name="eshop" value=(n.eshop_id);
                        input type="hidden" name="back" value=(job.id);
                        button type="submit" { "Redeliver" }
                    }
                    table.grid.attempts {
                        thead { tr { th { "#" } th { "time" } th { "status" } th { "duration" } th { "error" } } }
                        tbody {
                            @for a in attempts {
                                tr {
                                    td.num { (a.attempt) }
                                    td { (zone.format(a.attempted_at)) }
                                    td.num { @match a.status_code { Some(c) => (c), None => "—" } }
                                    td.num { (a.duration_ms) " ms" }
                                    td { (a.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(&format!("Job {id}"), Section::Jobs, &operator, body),
    ))
}
