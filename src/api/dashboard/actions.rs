//! The dashboard's changes, each a POST with the session's CSRF token, each through the
//! write op the API uses for the same change: kill a job, redeliver a notification,
//! re-enable a webhook; and two bulk actions that first show how many rows they will touch.

use super::layout::{self, csrf_field, Section};
use super::session::{check_csrf, Operator};
use super::{html, see_other, DashError, DashResult};
use crate::api::AppState;
use crate::db::webhooks::WebhookChange;
use crate::model::{ids, time, JobStatus, Micros};
use crate::store::{
    Bulk, CountBulk, GetAnyWebhook, GetJobForResult, KillJob, RedeliverNotification, RunBulk,
    UpdateWebhook,
};
use actix_web::http::StatusCode;
use actix_web::web;
use maud::html as markup;
use serde::Deserialize;

/// The form of a single action.
#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// The e-shop owning the row (redelivery, bulk kill).
    eshop: Option<i64>,
    /// The job page to return to.
    back: Option<String>,
    /// Present once the operator confirmed a bulk action.
    confirm: Option<String>,
}

impl ActionForm {
    /// The e-shop the form names.
    fn eshop(&self) -> Result<i64, DashError> {
        self.eshop
            .ok_or_else(|| DashError::BadRequest("The form names no e-shop.".into()))
    }
}

fn job_cutoff(state: &AppState) -> Micros {
    time::now() - time::micros(state.config.job_retention)
}

fn notification_cutoff(state: &AppState) -> Micros {
    time::now() - time::micros(state.config.notification_retention)
}

/// `POST /dashboard/jobs/{jobId}/kill`.
pub(crate) async fn kill(
    state: web::Data<AppState>,
    operator: Operator,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> DashResult {
    check_csrf(&operator, &form.csrf)?;
    let id = id.into_inner();
    if !ids::is_job_id(&id) {
        return Err(DashError::NotFound);
    }
    let job = state
        .store
        .read(GetJobForResult {
            id: id.clone(),
            cutoff: job_cutoff(&state),
        })
        .await?;
    state
        .store
        .write(KillJob {
            eshop_id: job.eshop_id,
            id: id.clone(),
            zone: state.config.timezone,
            cutoff: job_cutoff(&state),
        })
        .await?;
    state
        .metrics
        .job_ended(&job.endpoint, JobStatus::Killed.as_str());
    log::info!("dashboard: operator {} killed job {id}", operator.name);
    Ok(see_other(&format!("/dashboard/jobs/{id}")))
}

/// `POST /dashboard/notifications/{id}/redeliver`.
pub(crate) async fn redeliver(
    state: web::Data<AppState>,
    operator: Operator,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> DashResult {
    check_csrf(&operator, &form.csrf)?;
    let eshop_id = form.eshop()?;
    let id = id.into_inner();
    state
        .store
        .write(RedeliverNotification {
            eshop_id,
            id: id.clone(),
            cutoff: notification_cutoff(&state),
        })
        .await?;
    log::info!("dashboard: operator {} redelivered {id}", operator.name);
    Ok(match form.back.as_deref().filter(|b| ids::is_job_id(b)) {
        Some(job) => see_other(&format!("/dashboard/jobs/{job}")),
        None => see_other("/dashboard/webhooks"),
    })
}

/// `POST /dashboard/webhooks/{id}/enable`.
pub(crate) async fn enable_webhook(
    state: web::Data<AppState>,
    operator: Operator,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> DashResult {
    check_csrf(&operator, &form.csrf)?;
    let id = id.into_inner();
    let webhook = state.store.read(GetAnyWebhook { id: id.clone() }).await?;
    state
        .store
        .write(UpdateWebhook {
            eshop_id: webhook.eshop_id,
            id: id.clone(),
            change: WebhookChange {
                url: None,
                active: Some(true),
                updated_at: Some(time::now()),
            },
        })
        .await?;
    log::info!(
        "dashboard: operator {} re-enabled webhook {id}",
        operator.name
    );
    Ok(see_other("/dashboard/webhooks"))
}

/// `POST /dashboard/jobs/kill-pending`: kill every pending job of an e-shop.
pub(crate) async fn kill_pending(
    state: web::Data<AppState>,
    operator: Operator,
    form: web::Form<ActionForm>,
) -> DashResult {
    check_csrf(&operator, &form.csrf)?;
    let eshop_id = form.eshop()?;
    let what = format!("kill the pending jobs of e-shop {eshop_id}");
    bulk(
        &state,
        &operator,
        Bulk::KillPending { eshop_id },
        &form,
        &what,
        "/dashboard/jobs/kill-pending",
    )
    .await
}

/// `POST /dashboard/webhooks/{id}/redeliver-failed`: redeliver every failed notification of
/// a webhook.
pub(crate) async fn redeliver_failed(
    state: web::Data<AppState>,
    operator: Operator,
    id: web::Path<String>,
    form: web::Form<ActionForm>,
) -> DashResult {
    check_csrf(&operator, &form.csrf)?;
    let id = id.into_inner();
    let webhook = state.store.read(GetAnyWebhook { id: id.clone() }).await?;
    let what = format!(
        "redeliver the failed notifications of e-shop {}'s webhook to {}",
        webhook.eshop_id, webhook.url
    );
    let action = format!("/dashboard/webhooks/{id}/redeliver-failed");
    bulk(
        &state,
        &operator,
        Bulk::RedeliverFailed { webhook_id: id },
        &form,
        &what,
        &action,
    )
    .await
}

/// A bulk action: without `confirm`, a page saying how many rows it will touch with a form
/// to confirm; with it, the action and a page saying how many rows it touched.
async fn bulk(
    state: &AppState,
    operator: &Operator,
    bulk: Bulk,
    form: &ActionForm,
    what: &str,
    action: &str,
) -> DashResult {
    let cutoff = match bulk {
        Bulk::KillPending { .. } => job_cutoff(state),
        Bulk::RedeliverFailed { .. } => notification_cutoff(state),
    };
    let body = if form.confirm.is_none() {
        let count = state
            .store
            .read(CountBulk {
                bulk: bulk.clone(),
                cutoff,
            })
            .await?;
        markup! {
            h1 { "Confirm" }
            p.confirm {
                "This will " (what) ": " strong.count { (count.n) } " rows"
                @if count.more { " (the most one action touches; run it again for the rest)" }
                "."
            }
            @if count.n > 0 {
                form.action method="post" action=(action) {
                    (csrf_field(operator))
                    @if let Some(e) = form.eshop { input type="hidden" name="eshop" value=(e); }
                    input type="hidden" name="confirm" value="1";
                    button.danger type="submit" { "Yes, do it" }
                }
            }
            p { a href="/dashboard" { "Cancel" } }
        }
    } else {
        let done = state
            .store
            .write(RunBulk {
                bulk: bulk.clone(),
                zone: state.config.timezone,
                cutoff,
            })
            .await?;
        for endpoint in done.iter().filter_map(|(_, endpoint)| endpoint.as_ref()) {
            state
                .metrics
                .job_ended(endpoint, JobStatus::Killed.as_str());
        }
        log::info!(
            "dashboard: operator {} chose to {what}: {} rows",
            operator.name,
            done.len()
        );
        markup! {
            h1 { "Done" }
            p.confirm { "Chose to " (what) ": " strong.count { (done.len()) } " rows touched." }
            p { a href="/dashboard" { "Back to the overview" } }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Bulk action", Section::None, operator, body),
    ))
}
