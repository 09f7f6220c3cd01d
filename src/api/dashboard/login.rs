//! Signing in and out. The sign-in form has one password field for the operator token; it
//! is protected against cross-site posting by a double-submit token (a cookie limited to
//! this path and a hidden field that must match), since there is no session yet.

use super::session::{self, csrf_matches, Operator, SESSION_COOKIE};
use super::{html, see_other, DashError, DashResult};
use crate::api::AppState;
use crate::error::StoreError;
use crate::model::{ids, time};
use crate::store::{SignIn, SignOut};
use actix_web::http::header::SET_COOKIE;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html as markup, DOCTYPE};
use serde::Deserialize;

/// Where the sign-in form lives.
pub(crate) const PATH: &str = "/dashboard/login";

/// The cookie of the sign-in form's double-submit token.
const LOGIN_COOKIE: &str = "jobline_login";

/// How long a sign-in form may be left open.
const LOGIN_FORM_TTL: u64 = 3600;

/// What the sign-in form posts.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// What a signed-in form posts when it only needs its CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

fn form_page(state: &AppState, status: StatusCode, error: Option<&str>) -> HttpResponse {
    let csrf = ids::new_session_secret();
    let body = markup! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · jobline" }
                link rel="stylesheet" href="/dashboard/static/dashboard.css";
            }
            body {
                main.narrow {
                    h1 { "jobline dashboard" }
                    form.signin method="post" action=(PATH) {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="token" { "Operator token" }
                        input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { "Sign in" }
                    }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    p.hint {
                        "An operator token comes from " code { "jobline operator add <NAME>" }
                        ". An e-shop's API token does not open the dashboard."
                    }
                }
            }
        }
    };
    let mut res = html(status, body);
    if let Ok(v) = session::set_cookie(state, LOGIN_COOKIE, &csrf, PATH, LOGIN_FORM_TTL).parse() {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

/// `GET /dashboard/login`.
pub(crate) async fn form(state: web::Data<AppState>) -> HttpResponse {
    form_page(&state, StatusCode::OK, None)
}

/// `POST /dashboard/login`: a valid operator token starts a session and goes to the overview.
pub(crate) async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SignInForm>,
) -> DashResult {
    let expected = session::cookie(&req, LOGIN_COOKIE).unwrap_or_default();
    if !csrf_matches(&form.csrf, &expected) {
        return Err(DashError::Csrf);
    }
    let token = form.token.trim();
    if token.is_empty() {
        return Ok(form_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Enter an operator token."),
        ));
    }
    let now = time::now();
    let ttl = state.config.dashboard_session_ttl;
    let session_id = ids::new_session_secret();
    let signed_in = state
        .store
        .write(SignIn {
            token_hash: ids::token_hash(token),
            session_id: session_id.clone(),
            csrf: ids::new_session_secret(),
            now,
            expires_at: now + time::micros(ttl),
        })
        .await;
    match signed_in {
        Ok(name) => {
            log::info!("dashboard: operator {name} signed in");
            let mut res = see_other("/dashboard");
            let headers = res.headers_mut();
            for cookie in [
                session::set_cookie(
                    &state,
                    SESSION_COOKIE,
                    &session_id,
                    "/dashboard",
                    ttl.as_secs(),
                ),
                session::set_cookie(&state, LOGIN_COOKIE, "", PATH, 0),
            ] {
                if let Ok(v) = cookie.parse() {
                    headers.append(SET_COOKIE, v);
                }
            }
            Ok(res)
        }
        Err(StoreError::NotFound) => Ok(form_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That is not an operator token."),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /dashboard/logout`: ends the session.
pub(crate) async fn sign_out(
    state: web::Data<AppState>,
    operator: Operator,
    form: web::Form<CsrfForm>,
) -> DashResult {
    session::check_csrf(&operator, &form.csrf)?;
    state
        .store
        .write(SignOut {
            id_hash: operator.id_hash.clone(),
        })
        .await?;
    let mut res = see_other(PATH);
    if let Ok(v) = session::set_cookie(&state, SESSION_COOKIE, "", "/dashboard", 0).parse() {
        res.headers_mut().append(SET_COOKIE, v);
    }
    Ok(res)
}
