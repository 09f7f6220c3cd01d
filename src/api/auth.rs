//! Token authentication: the [`Tenant`] extractor resolves the e-shop of a request from
//! `Authorization: Bearer <token>` or, for Shoptet clients, the same token in
//! `Shoptet-Private-API-Token` or `Shoptet-Access-Token`. Token hashes are cached for a
//! minute so that a request costs no database read for it.

use super::error::ApiError;
use super::shoptet;
use super::AppState;
use crate::error::StoreError;
use crate::model::ids::token_hash;
use crate::store::Authenticate;
use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a resolved token is trusted without asking the database again.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Entries at most; the cache is cleared when full.
const CACHE_MAX: usize = 10_000;

/// Token hash → (e-shop, when resolved).
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, (i64, Instant)>>);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<i64> {
        let map = self.0.lock().expect("token cache lock");
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(id, _)| *id)
    }

    fn put(&self, hash: String, eshop: i64) {
        let mut map = self.0.lock().expect("token cache lock");
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(hash, (eshop, Instant::now()));
    }
}

/// The authenticated e-shop of a request.
#[derive(Debug, Clone, Copy)]
pub struct Tenant {
    /// Its id: every query of the request is scoped by it.
    pub eshop_id: i64,
}

/// The API token of a request, or the 401 to answer: `Authorization: Bearer <token>` when
/// that header is sent, else Shoptet's `Shoptet-Private-API-Token`, else
/// `Shoptet-Access-Token` (the same tokens, the same errors).
pub fn api_token(req: &HttpRequest) -> Result<String, ApiError> {
    let headers = req.headers();
    if let Some(header) = headers.get(actix_web::http::header::AUTHORIZATION) {
        // The scheme is case-insensitive (RFC 9110 §11.1).
        return header
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(invalid_token);
    }
    let shoptet = headers
        .get(shoptet::PRIVATE_TOKEN_HEADER)
        .or_else(|| headers.get(shoptet::ACCESS_TOKEN_HEADER));
    match shoptet {
        Some(v) => v
            .to_str()
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(invalid_token),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing-access-token",
            "Send the API token as `Authorization: Bearer <token>` (or in `Shoptet-Private-API-Token`).",
        )),
    }
}

fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid-access-token",
        "The API token is not valid.",
    )
}

/// The e-shop of a token hash, from the cache or the database; `None` when no e-shop has
/// that token. Only tokens that resolve are cached, so made-up tokens cannot fill the cache.
pub async fn resolve(state: &AppState, hash: &str) -> Result<Option<i64>, StoreError> {
    if let Some(eshop_id) = state.tokens.get(hash) {
        return Ok(Some(eshop_id));
    }
    let read = Authenticate {
        token_hash: hash.to_string(),
    };
    match state.store.read(read).await {
        Ok(eshop_id) => {
            state.tokens.put(hash.to_string(), eshop_id);
            Ok(Some(eshop_id))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Tenant, ApiError>>;

    /// Resolves the e-shop and records it in the request's extensions (for the access log).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = api_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::internal("no application state"))?;
            let eshop_id = match resolve(&state, &token_hash(&token)).await {
                Ok(Some(eshop_id)) => eshop_id,
                Ok(None) => return Err(invalid_token()),
                Err(e) => return Err(e.into()),
            };
            let tenant = Tenant { eshop_id };
            req.extensions_mut().insert(tenant);
            Ok(tenant)
        })
    }
}
