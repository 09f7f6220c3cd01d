//! The leaky buckets: each request adds one drop, a bucket leaks
//! `rate_limit_refill_per_sec` drops a second, and a request that would overflow
//! `rate_limit_capacity` is answered 429 with `Retry-After`. A request whose token
//! authenticates fills that token's bucket; one without a token or with an unknown token
//! fills the bucket of its client address, so made-up tokens neither get buckets of their
//! own nor touch a real token's. Every `/api/` response says how full its bucket is
//! (`X-RateLimit-Bucket-Filling: n/capacity`). Buckets live in each node's memory, at most
//! `rate_limit_max_buckets`, the least recently used forgotten first (a bucket unused for
//! `capacity / refill` seconds is empty anyway, and one in active use is never the least
//! recent); with N nodes behind a balancer a client gets up to N times the rate.

use super::envelope::{envelope, ErrorItem};
use super::AppState;
use crate::model::ids::token_hash;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Instant;

/// The header carrying the bucket's filling.
pub const FILLING_HEADER: &str = "x-ratelimit-bucket-filling";

/// Whose bucket a request fills.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    /// An API token that authenticated, by its hash.
    Token(String),
    /// A client address whose request had no token, or one that did not authenticate.
    Address(IpAddr),
}

/// One bucket: its level when last used, and when that was.
struct Bucket {
    level: f64,
    at: Instant,
    /// Its place in the recency order.
    used: u64,
}

/// The buckets and their order of use, least recent first.
#[derive(Default)]
struct Buckets {
    by_key: HashMap<BucketKey, Bucket>,
    by_use: BTreeMap<u64, BucketKey>,
    clock: u64,
}

/// The buckets of one node.
pub struct RateLimiter {
    capacity: f64,
    leak_per_sec: f64,
    max_buckets: usize,
    buckets: Mutex<Buckets>,
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
    /// A limiter keeping at most `max_buckets` buckets; `capacity` 0 disables it.
    pub fn new(capacity: u32, leak_per_sec: u32, max_buckets: usize) -> RateLimiter {
        RateLimiter {
            capacity: f64::from(capacity),
            leak_per_sec: f64::from(leak_per_sec),
            max_buckets: max_buckets.max(1),
            buckets: Mutex::default(),
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0.0
    }

    /// Adds one request of `key` at `now`.
    pub fn admit(&self, key: &BucketKey, now: Instant) -> Verdict {
        let mut guard = self.buckets.lock().expect("rate limit lock");
        let Buckets {
            by_key,
            by_use,
            clock,
        } = &mut *guard;
        *clock += 1;
        match by_key.get(key) {
            Some(bucket) => {
                by_use.remove(&bucket.used);
            }
            None if by_key.len() >= self.max_buckets => {
                if let Some((_, oldest)) = by_use.pop_first() {
                    by_key.remove(&oldest);
                }
            }
            None => {}
        }
        by_use.insert(*clock, key.clone());
        let bucket = by_key.entry(key.clone()).or_insert(Bucket {
            level: 0.0,
            at: now,
            used: *clock,
        });
        bucket.used = *clock;
        let leaked = now.saturating_duration_since(bucket.at).as_secs_f64() * self.leak_per_sec;
        bucket.level = (bucket.level - leaked).max(0.0);
        bucket.at = now;
        if bucket.level + 1.0 > self.capacity {
            let wait = if self.leak_per_sec > 0.0 {
                ((bucket.level + 1.0 - self.capacity) / self.leak_per_sec)
                    .ceil()
                    .max(1.0)
            } else {
                3600.0
            };
            Verdict::Refused(wait as u64)
        } else {
            bucket.level += 1.0;
            Verdict::Allowed(bucket.level.ceil() as u32)
        }
    }
}

/// The bucket of a request: its token's when the token authenticates, else its address's.
/// A database that does not answer counts as "not authenticated" here; the handler then
/// answers 503 itself.
async fn bucket_of(state: &AppState, req: &ServiceRequest) -> BucketKey {
    if let Ok(token) = super::auth::api_token(req.request()) {
        let hash = token_hash(&token);
        if let Ok(Some(_)) = super::auth::resolve(state, &hash).await {
            return BucketKey::Token(hash);
        }
    }
    BucketKey::Address(
        req.peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip()),
    )
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
    let key = bucket_of(&limiter, &req).await;
    let limiter = &limiter.limiter;
    let verdict = limiter.admit(&key, Instant::now());
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

    fn token(name: &str) -> BucketKey {
        BucketKey::Token(name.to_string())
    }

    #[test]
    fn bucket_fills_refuses_and_leaks() {
        let l = RateLimiter::new(3, 1, 100);
        let t0 = Instant::now();
        let a = token("a");
        assert_eq!(l.admit(&a, t0), Verdict::Allowed(1));
        assert_eq!(l.admit(&a, t0), Verdict::Allowed(2));
        assert_eq!(l.admit(&a, t0), Verdict::Allowed(3));
        assert_eq!(l.admit(&a, t0), Verdict::Refused(1));
        assert_eq!(
            l.admit(&token("b"), t0),
            Verdict::Allowed(1),
            "buckets are per token"
        );
        assert_eq!(
            l.admit(&a, t0 + Duration::from_secs(1)),
            Verdict::Allowed(3)
        );
        assert_eq!(
            l.admit(&a, t0 + Duration::from_secs(10)),
            Verdict::Allowed(1)
        );
    }

    #[test]
    fn the_least_recently_used_bucket_is_forgotten_first() {
        let l = RateLimiter::new(2, 1, 3);
        let t0 = Instant::now();
        let (busy, idle) = (token("busy"), token("idle"));
        l.admit(&idle, t0);
        l.admit(&busy, t0);
        l.admit(&busy, t0);
        assert_eq!(l.admit(&busy, t0), Verdict::Refused(1));
        for i in 0..1000 {
            let stranger = BucketKey::Address(IpAddr::from([10, 0, (i / 256) as u8, i as u8]));
            assert_eq!(l.admit(&stranger, t0), Verdict::Allowed(1));
            // The busy token keeps being used, so it is never the least recent.
            assert_eq!(
                l.admit(&busy, t0),
                Verdict::Refused(1),
                "after {i} strangers"
            );
        }
        let buckets = l.buckets.lock().unwrap();
        assert_eq!(buckets.by_key.len(), 3);
        assert_eq!(buckets.by_use.len(), 3);
        assert!(
            !buckets.by_key.contains_key(&idle),
            "the idle bucket went first"
        );
    }
}
