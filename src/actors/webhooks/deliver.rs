//! One delivery attempt over the guarded client: signed headers, no redirects, the
//! answer's status, `Retry-After` and the start of its body, or a readable error.

use crate::db::deliveries::ClaimedDelivery;
use crate::model::time;
use crate::outbound::{describe_error, signing, GuardedClient};
use std::time::{Duration, Instant};

/// The most of an answer's body kept with an attempt.
pub const EXCERPT_MAX: usize = 1024;

/// How an attempt ended: the `outcome` label of `jobline_webhook_attempts_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    #[default]
    Success,
    /// Any other answer (redirects included: they are not followed).
    HttpError,
    /// No answer within `webhook_timeout`.
    Timeout,
    /// No answer: connection refused or reset, DNS, TLS.
    ConnectionError,
    /// Not sent: the URL is invalid or not allowed (private target), or signing failed.
    Refused,
    /// Not sent: the e-shop has no active webhook for the event.
    NoWebhook,
}

impl AttemptOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::HttpError => "http_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::ConnectionError => "connection_error",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::NoWebhook => "no_webhook",
        }
    }
}

/// What one attempt got.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// When it started.
    pub at: time::Micros,
    /// How long it took.
    pub duration_ms: i64,
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// The answer's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Why it failed (None on a 2xx).
    pub error: Option<String>,
    /// The start of the answer's body.
    pub excerpt: Option<String>,
    /// How it ended, for metrics.
    pub outcome: AttemptOutcome,
}

/// Posts a claimed notification to its webhook. Never fails: every outcome is an attempt.
pub async fn deliver(client: &GuardedClient, d: &ClaimedDelivery, timeout: Duration) -> Delivered {
    let at = time::now();
    let started = Instant::now();
    let mut out = Delivered {
        at,
        ..Delivered::default()
    };
    let finish = |mut out: Delivered| {
        out.duration_ms = started.elapsed().as_millis() as i64;
        out
    };
    let Some(target) = &d.target else {
        out.error = Some(format!("no active {} webhook", d.event));
        out.outcome = AttemptOutcome::NoWebhook;
        return finish(out);
    };
    let url = match reqwest::Url::parse(&target.url) {
        Ok(u) => u,
        Err(e) => {
            out.error = Some(format!("invalid URL: {e}"));
            out.outcome = AttemptOutcome::Refused;
            return finish(out);
        }
    };
    if let Err(refused) = client.check(&url).await {
        out.error = Some(refused.to_string());
        out.outcome = AttemptOutcome::Refused;
        return finish(out);
    }
    let timestamp = at / time::SECOND;
    let signature =
        match signing::signature_header(&target.secrets, &d.id, timestamp, d.payload.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(format!("cannot sign: {e}"));
                out.outcome = AttemptOutcome::Refused;
                return finish(out);
            }
        };
    let mut request = client
        .http()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature);
    // Shoptet's header: the current (newest) key only.
    if let Some(current) = target.secrets.first() {
        request = request.header(
            signing::SHOPTET_SIGNATURE_HEADER,
            signing::shoptet_signature(current, d.payload.as_bytes()),
        );
    }
    let sent = request.body(d.payload.clone()).send().await;
    let mut res = match sent {
        Ok(res) => res,
        Err(e) if e.is_timeout() => {
            out.error = Some(format!(
                "timed out after {} ms (webhook_timeout): {}",
                timeout.as_millis(),
                describe_error(&e)
            ));
            out.outcome = AttemptOutcome::Timeout;
            return finish(out);
        }
        Err(e) => {
            out.error = Some(describe_error(&e));
            out.outcome = AttemptOutcome::ConnectionError;
            return finish(out);
        }
    };
    let status = res.status().as_u16();
    out.status = Some(status);
    out.retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| super::retry::parse_retry_after(v, chrono::Utc::now()));
    let mut body = Vec::new();
    while body.len() < EXCERPT_MAX {
        match res.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(EXCERPT_MAX);
    if !body.is_empty() {
        out.excerpt = Some(String::from_utf8_lossy(&body).into_owned());
    }
    if !res.status().is_success() {
        out.outcome = AttemptOutcome::HttpError;
        out.error = Some(if res.status().is_redirection() {
            format!("answered HTTP {status}; redirects are not followed")
        } else {
            format!("answered HTTP {status}")
        });
    }
    finish(out)
}
