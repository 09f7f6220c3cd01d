//! Dashboard sessions: the [`Operator`] extractor reads the session cookie and checks it
//! against the database (so any node of a cluster accepts it); [`check_csrf`] guards every
//! POST; the cookies are built here with their flags.

use super::DashError;
use crate::api::AppState;
use crate::model::{ids, time};
use crate::store::GetSession;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "jobline_session";

/// A signed-in operator: every dashboard page takes one, so without a valid session the
/// request goes to the sign-in page.
pub(crate) struct Operator {
    /// The operator's name.
    pub name: String,
    /// The token the session's forms send back.
    pub csrf: String,
    /// SHA-256 of the session id (to end it).
    pub id_hash: String,
}

/// The value of a cookie sent with the request.
pub(crate) fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, limited to `path`, `Secure` when the
/// dashboard is served over https; `max_age` 0 removes the cookie.
pub(crate) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) -> String {
    let secure = if state.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

impl FromRequest for Operator {
    type Error = DashError;
    type Future = LocalBoxFuture<'static, Result<Operator, DashError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = cookie(req, SESSION_COOKIE);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(id), Some(state)) = (id, state) else {
                return Err(DashError::SignIn);
            };
            let id_hash = ids::token_hash(&id);
            match state
                .store
                .read(GetSession {
                    id_hash: id_hash.clone(),
                    now: time::now(),
                })
                .await
            {
                Ok(s) => Ok(Operator {
                    name: s.operator,
                    csrf: s.csrf,
                    id_hash,
                }),
                Err(crate::error::StoreError::NotFound) => Err(DashError::SignIn),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Whether a form's CSRF token is the expected one (compared in constant time).
pub(crate) fn csrf_matches(sent: &str, expected: &str) -> bool {
    !expected.is_empty()
        && sent.len() == expected.len()
        && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// Refuses a POST whose form does not carry the session's CSRF token.
pub(crate) fn check_csrf(operator: &Operator, sent: &str) -> Result<(), DashError> {
    if csrf_matches(sent, &operator.csrf) {
        Ok(())
    } else {
        Err(DashError::Csrf)
    }
}
