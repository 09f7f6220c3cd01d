//! The leaky bucket per API token: each request adds one drop, the bucket leaks
//! `rate_limit_refill_per_sec` drops a second, and a request that would overflow
//! `rate_limit_capacity` is answered 429 with `Retry-After`. Every `/api/` response says how
//! full the bucket is (`X-RateLimit-Bucket-Filling: n/capacity`). Buckets live in each
//! node's memory: with N nodes behind a balancer a client gets up to N times the rate.

use super::envelope::{envelope, ErrorItem};
use super::AppState;
use crate::model::ids::token_hash;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The header carrying the bucket's filling.
pub const FILLING_HEADER: &str = "x-ratelimit-bucket-filling";
/// Buckets kept at most; full buckets drain, so forgetting all of them is safe.
const MAX_BUCKETS: usize = 100_000;

/// The buckets of one node.
pub struct RateLimiter {
    capacity: f64,
    leak_per_sec: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// What the bucket said about one request.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Allowed; the bucket now holds this many drops.
    Allowed(u32),
    /// Refused; retry after this many seconds. The bucket is full.
    Refused(u64),
}

impl RateLimiter {
    /// A limiter; `capacity` 0 disables it.
    pub fn new(capacity: u32, leak_per_sec: u32) -> RateLimiter {
        RateLimiter {
            capacity: f64::from(capacity),
            leak_per_sec: f64::from(leak_per_sec),
            buckets: Mutex::default(),
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0.0
    }

    /// Adds one request of `key` at `now`.
    pub fn admit(&self, key: &str, now: Instant) -> Verdict {
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.clear();
        }
        let (level, at) = buckets.entry(key.to_string()).or_insert((0.0, now));
        let leaked = now.saturating_duration_since(*at).as_secs_f64() * self.leak_per_sec;
        *level = (*level - leaked).max(0.0);
        *at = now;
        if *level + 1.0 > self.capacity {
            let wait = if self.leak_per_sec > 0.0 {
                ((*level + 1.0 - self.capacity) / self.leak_per_sec)
                    .ceil()
                    .max(1.0)
            } else {
                3600.0
            };
            Verdict::Refused(wait as u64)
        } else {
            *level += 1.0;
            Verdict::Allowed(level.ceil() as u32)
        }
    }
}

fn filling(n: u32, capacity: f64) -> HeaderValue {
    HeaderValue::from_str(&format!("{n}/{}", capacity as u32)).expect("ascii header")
}

/// Middleware for `/api/` requests.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let limiter = match state {
        Some(s) if s.limiter.enabled() && req.path().starts_with("/api/") => s,
        _ => return Ok(next.call(req).await?.map_into_left_body()),
    };
    let limiter = &limiter.limiter;
    let token = super::auth::api_token(req.request()).ok();
    let verdict = match &token {
        Some(t) => limiter.admit(&token_hash(t), Instant::now()),
        None => Verdict::Allowed(0),
    };
    match verdict {
        Verdict::Allowed(n) => {
            let mut res = next.call(req).await?;
            res.headers_mut().insert(
                HeaderName::from_static(FILLING_HEADER),
                filling(n, limiter.capacity),
            );
            Ok(res.map_into_left_body())
        }
        Verdict::Refused(secs) => {
            let body = envelope(
                None::<()>,
                Some(vec![ErrorItem {
                    error_code: "too-many-requests".into(),
                    message: format!("Too many requests; retry in {secs} s."),
                    instance: None,
                }]),
            );
            let res = HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .insert_header((
                    HeaderName::from_static(FILLING_HEADER),
                    filling(limiter.capacity as u32, limiter.capacity),
                ))
                .json(body);
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_fills_refuses_and_leaks() {
        let l = RateLimiter::new(3, 1);
        let t0 = Instant::now();
        assert_eq!(l.admit("a", t0), Verdict::Allowed(1));
        assert_eq!(l.admit("a", t0), Verdict::Allowed(2));
        assert_eq!(l.admit("a", t0), Verdict::Allowed(3));
        assert_eq!(l.admit("a", t0), Verdict::Refused(1));
        assert_eq!(
            l.admit("b", t0),
            Verdict::Allowed(1),
            "buckets are per token"
        );
        assert_eq!(
            l.admit("a", t0 + Duration::from_secs(1)),
            Verdict::Allowed(3)
        );
        assert_eq!(
            l.admit("a", t0 + Duration::from_secs(10)),
            Verdict::Allowed(1)
        );
    }
}
