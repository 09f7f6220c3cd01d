//! What follows a delivery attempt: success on 2xx; the end on 410 (the webhook is turned
//! off), on a redelivery's single attempt, or when the retry schedule is exhausted;
//! otherwise the next attempt after the schedule's delay with ±20 % jitter, or after the
//! receiver's `Retry-After` (429 and 503, at most an hour).

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How far the jitter moves a scheduled delay either way.
pub const JITTER: f64 = 0.2;

/// What happens after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Delivered.
    Success,
    /// Try again after this delay.
    RetryAfter(Duration),
    /// No more attempts: the notification is `failed` (and can be redelivered).
    Failed,
}

/// Decides what follows attempt number `attempt` (from 1) that got `status` (None when
/// no answer came) and the receiver's `retry_after`. `jitter` is a factor drawn from
/// `1 ± JITTER`.
pub fn next(
    status: Option<u16>,
    retry_after: Option<Duration>,
    attempt: i32,
    redelivery: bool,
    schedule: &[Duration],
    jitter: f64,
) -> Next {
    if status.is_some_and(|s| (200..300).contains(&s)) {
        return Next::Success;
    }
    if status == Some(410) || redelivery {
        return Next::Failed;
    }
    let Some(delay) = usize::try_from(attempt - 1)
        .ok()
        .and_then(|i| schedule.get(i))
    else {
        return Next::Failed;
    };
    match (status, retry_after) {
        (Some(429 | 503), Some(wait)) => Next::RetryAfter(wait.min(MAX_RETRY_AFTER)),
        _ => Next::RetryAfter(delay.mul_f64(jitter.clamp(1.0 - JITTER, 1.0 + JITTER))),
    }
}

/// Reads a `Retry-After` value: seconds, or an HTTP date (a date in the past is 0).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(300)];

    #[test]
    fn follows_the_schedule_then_fails() {
        assert_eq!(next(Some(200), None, 1, false, &S, 1.0), Next::Success);
        assert_eq!(next(Some(204), None, 3, true, &S, 1.0), Next::Success);
        assert_eq!(
            next(Some(500), None, 1, false, &S, 1.0),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            next(None, None, 2, false, &S, 1.2),
            Next::RetryAfter(Duration::from_secs(360))
        );
        assert_eq!(
            next(Some(500), None, 1, false, &S, 3.0),
            Next::RetryAfter(Duration::from_secs(6))
        );
        assert_eq!(next(Some(500), None, 3, false, &S, 1.0), Next::Failed);
        assert_eq!(next(Some(302), None, 1, true, &S, 1.0), Next::Failed);
        assert_eq!(next(Some(410), None, 1, false, &S, 1.0), Next::Failed);
    }

    #[test]
    fn honours_retry_after_on_429_and_503_only() {
        let wait = Some(Duration::from_secs(42));
        assert_eq!(
            next(Some(429), wait, 1, false, &S, 1.0),
            Next::RetryAfter(Duration::from_secs(42))
        );
        assert_eq!(
            next(
                Some(503),
                Some(Duration::from_secs(99_999)),
                1,
                false,
                &S,
                1.0
            ),
            Next::RetryAfter(MAX_RETRY_AFTER)
        );
        assert_eq!(
            next(Some(500), wait, 1, false, &S, 1.0),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(next(Some(429), wait, 3, false, &S, 1.0), Next::Failed);
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
