//! The operator dashboard under `/dashboard`: server-rendered HTML (maud templates, checked
//! at compile time, escaping everything dynamic), a little vanilla JavaScript for live
//! updates, no asset from outside the node. Every page needs an operator session
//! ([`session::Operator`]); every change is a POST carrying the session's CSRF token.
//! Reads go through the query actors, changes through the ordinary write ops.

mod actions;
mod assets;
mod attempts;
mod jobs;
mod layout;
mod login;
mod overview;
mod session;
mod webhooks;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use std::fmt;

/// Why a dashboard request is not answered with its page.
#[derive(Debug)]
pub(crate) enum DashError {
    /// No valid session: go to the sign-in page.
    SignIn,
    /// The form's CSRF token is missing or wrong.
    Csrf,
    /// A bad parameter: the message says which.
    BadRequest(String),
    /// No such job, webhook or notification.
    NotFound,
    /// The change is not possible any more (e.g. the job has finished).
    Conflict(String),
    /// The database or an actor failed; the cause is logged only.
    Internal(String),
}

impl fmt::Display for DashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<crate::error::StoreError> for DashError {
    fn from(e: crate::error::StoreError) -> DashError {
        use crate::error::StoreError;
        match e {
            StoreError::NotFound => DashError::NotFound,
            StoreError::InvalidState(code) | StoreError::Conflict(code) => {
                DashError::Conflict(code.to_string())
            }
            other => DashError::Internal(other.to_string()),
        }
    }
}

impl From<super::error::ApiError> for DashError {
    fn from(e: super::error::ApiError) -> DashError {
        DashError::BadRequest(e.message)
    }
}

impl ResponseError for DashError {
    fn status_code(&self) -> StatusCode {
        match self {
            DashError::SignIn => StatusCode::SEE_OTHER,
            DashError::Csrf => StatusCode::FORBIDDEN,
            DashError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DashError::NotFound => StatusCode::NOT_FOUND,
            DashError::Conflict(_) => StatusCode::CONFLICT,
            DashError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let DashError::SignIn = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, login::PATH))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        let message = match self {
            DashError::SignIn => unreachable!("answered above"),
            DashError::Csrf => {
                "This form has expired or did not come from this dashboard. Go back, reload \
                 the page and try again."
                    .to_string()
            }
            DashError::BadRequest(m) => m.clone(),
            DashError::NotFound => {
                "There is no such job, webhook or notification (any more).".into()
            }
            DashError::Conflict(code) => format!("That is not possible now: {code}."),
            DashError::Internal(cause) => {
                log::error!("dashboard: {cause}");
                "Something failed on the server; the log says what.".into()
            }
        };
        html(
            self.status_code(),
            layout::message_page(self.status_code().as_u16(), &message),
        )
    }
}

/// A dashboard result.
pub(crate) type DashResult = Result<HttpResponse, DashError>;

/// What every dashboard answer carries: no caching, no framing, no referrer (result links
/// hold a secret), and a policy that lets only this node's own script and styles run.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// An HTML answer with the dashboard's security headers.
pub(crate) fn html(status: StatusCode, body: maud::Markup) -> HttpResponse {
    let mut res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body.into_string());
    secure_headers(res.headers_mut());
    res
}

fn secure_headers(h: &mut header::HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// A redirect after a successful POST (so a reload does not repeat it).
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Registers the dashboard's routes.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    use super::endpoint::endpoint;
    cfg.service(endpoint("/dashboard").get(overview::page))
        .service(endpoint("/dashboard/").get(overview::page))
        .service(endpoint(login::PATH).get(login::form).post(login::sign_in))
        .service(endpoint("/dashboard/logout").post(login::sign_out))
        .service(endpoint("/dashboard/static/{file}").get(assets::serve))
        .service(endpoint("/dashboard/jobs").get(jobs::list))
        .service(endpoint("/dashboard/jobs/kill-pending").post(actions::kill_pending))
        .service(endpoint("/dashboard/jobs/{job_id}").get(jobs::detail))
        .service(endpoint("/dashboard/jobs/{job_id}/kill").post(actions::kill))
        .service(endpoint("/dashboard/notifications/{id}/redeliver").post(actions::redeliver))
        .service(endpoint("/dashboard/webhooks").get(webhooks::list))
        .service(endpoint("/dashboard/webhooks/{id}/enable").post(actions::enable_webhook))
        .service(
            endpoint("/dashboard/webhooks/{id}/redeliver-failed").post(actions::redeliver_failed),
        )
        .service(web::resource("/dashboard/{tail:.*}").to(unknown_page));
}

/// Any other dashboard URL: the sign-in page without a session, else "not found".
async fn unknown_page(_: session::Operator) -> DashResult {
    Err(DashError::NotFound)
}
