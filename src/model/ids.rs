//! Identifiers and secrets: job ids, result secrets, API tokens and their hashes.

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use super::time::Micros;

/// The characters of a job id, in ASCII order: a job id is a base-36 number written with
/// them, so that numeric order is text order.
const JOB_ID_DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Length of a job id: the contract's "7 lower-case letters and digits".
pub const JOB_ID_LEN: usize = 7;

/// Values of a job id's low part, within one tick of [`JOB_ID_TICK`].
const JOB_ID_LOW: u64 = 1 << 24;
/// Microseconds a job id's time part stays the same (16.4 ms).
const JOB_ID_TICK: u64 = 1 << 14;
/// Ticks before the time part comes round again: as many as fit in 36^7 beside the low
/// part (4 670 ticks, 76.5 s).
const JOB_ID_TICKS: u64 = 36u64.pow(JOB_ID_LEN as u32) / JOB_ID_LOW;
/// An odd multiplier (2^24 / the golden ratio): multiplying by it is a bijection modulo
/// 2^24 that scatters consecutive counts over the whole range.
const JOB_ID_SCATTER: u64 = 0x9E_3779;

/// Counts the job ids this process made; with [`JOB_ID_START`], it gives their low parts.
static JOB_ID_COUNT: AtomicU64 = AtomicU64::new(0);
/// Where this process's low parts start: random, so that two nodes, or a restarted node,
/// do not follow the same sequence.
static JOB_ID_START: LazyLock<u64> = LazyLock::new(|| rand::rng().random_range(0..JOB_ID_LOW));

/// A new job id for a job created at `now`: the base-36 number `tick × 2^24 + low`, where
/// `tick` counts 16.4 ms periods modulo 4 670 (so it comes round every 76.5 s) and `low`
/// is this process's next value of a sequence that visits all 2^24 values in a scattered
/// order from a random start.
///
/// Ids made within the same tick fall into one narrow range of the id space, so that a
/// batch of inserts touches a page or two at the same place of each b-tree keyed by a job
/// id (the jobs' primary key, their result chunks, the `job:finished` notifications' unique
/// key) instead of a page per job all over it. SQLite writes every page a commit dirtied
/// to its WAL, and random ids made those three b-trees 2.5 of the 8.1 WAL frames a job
/// cost (docs/benchmarks.md, "Seventh session").
///
/// One process never makes the same id twice until it has made 2^24 of them (random low
/// parts would meet within a tick: two of 4 000 ids made in one tick are equal about every
/// other time). Ids of other processes, or older than that, can still be taken; the insert
/// then fails and `api::jobs::accept` submits again with a new id. Ids are not secrets
/// (every read of a job is scoped to its e-shop's token); what they tell of the time is
/// the creation time the job's detail shows anyway.
pub fn new_job_id(now: Micros) -> String {
    let tick = (now.max(0) as u64 / JOB_ID_TICK) % JOB_ID_TICKS;
    let count = JOB_ID_COUNT.fetch_add(1, Ordering::Relaxed);
    let low = JOB_ID_START.wrapping_add(count.wrapping_mul(JOB_ID_SCATTER)) % JOB_ID_LOW;
    let mut n = tick * JOB_ID_LOW + low;
    let mut id = [0u8; JOB_ID_LEN];
    for digit in id.iter_mut().rev() {
        *digit = JOB_ID_DIGITS[(n % 36) as usize];
        n /= 36;
    }
    id.iter().map(|&b| b as char).collect()
}

/// Whether `s` has the shape of a job id, so malformed ids are rejected before any query.
pub fn is_job_id(s: &str) -> bool {
    s.len() == JOB_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The secret part of a result URL: 160 random bits, hex encoded (the contract asks ≥ 128).
pub fn new_result_secret() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    hex::encode(bytes)
}

/// A new API token shown once to the operator; only its hash is stored.
pub fn new_api_token() -> String {
    format!("jl_{}", Alphanumeric.sample_string(&mut rand::rng(), 40))
}

/// A new operator token (dashboard sign-in), shown once; only its hash is stored. The prefix
/// tells it apart from an e-shop's API token at a glance.
pub fn new_operator_token() -> String {
    format!("jlop_{}", Alphanumeric.sample_string(&mut rand::rng(), 40))
}

/// A new dashboard session id or CSRF token: 256 random bits, hex.
pub fn new_session_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// What the database keeps of an API token: tokens carry 238 random bits, so a plain
/// SHA-256 is enough (no password stretching needed) and keeps authentication cheap.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random identifier with a readable prefix (`msg_…`, `key_…`) for rows that need one.
pub fn prefixed_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

/// Digits of [`ordered_id`]'s time part, in ASCII order so that text order is time order.
const ORDERED_DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Width of [`ordered_id`]'s time part: 62^10 microseconds last some 26 000 years.
const ORDERED_TIME_LEN: usize = 10;
/// Random characters after the time part (83 bits).
const ORDERED_RANDOM_LEN: usize = 14;

/// A random identifier with a readable prefix whose text sorts by creation time
/// (`msg_<time><random>`), for rows written at a high rate: a new row's key goes at the
/// end of its index instead of onto a random page, so a batch of inserts dirties a few
/// pages (SQLite writes each dirty page to its WAL at every commit) and PostgreSQL's
/// B-tree appends instead of splitting pages all over. The time part is the creation's
/// microsecond, which the row's owner sees anyway.
pub fn ordered_id(prefix: &str, now: super::time::Micros) -> String {
    let mut id = String::with_capacity(prefix.len() + 1 + ORDERED_TIME_LEN + ORDERED_RANDOM_LEN);
    id.push_str(prefix);
    id.push('_');
    let mut time = [0u8; ORDERED_TIME_LEN];
    let mut t = now.max(0) as u64;
    for digit in time.iter_mut().rev() {
        *digit = ORDERED_DIGITS[(t % 62) as usize];
        t /= 62;
    }
    id.extend(time.iter().map(|&b| b as char));
    id.push_str(&Alphanumeric.sample_string(&mut rand::rng(), ORDERED_RANDOM_LEN));
    id
}

/// A new product guid (UUID v4).
pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_have_the_contract_shape() {
        let now = crate::model::time::now();
        for _ in 0..1000 {
            let id = new_job_id(now);
            assert!(is_job_id(&id), "{id}");
        }
        assert!(is_job_id(&new_job_id(0)) && is_job_id(&new_job_id(i64::MAX)));
        assert!(!is_job_id("ABCDEFG"));
        assert!(!is_job_id("abc"));
        assert!(!is_job_id("abcdefgh"));
    }

    #[test]
    fn job_ids_of_one_tick_fall_in_its_range_in_text_order() {
        let value = |id: &str| u64::from_str_radix(id, 36).expect("base 36");
        let now = 1_764_000_000_000_000 / JOB_ID_TICK as i64 * JOB_ID_TICK as i64;
        let tick = value(&new_job_id(now)) / JOB_ID_LOW;
        // 20 000 ids in one tick, all different (random low parts: about 12 pairs equal).
        let ids: Vec<String> = (0..20_000).map(|i| new_job_id(now + i % 16_000)).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(ids.iter().all(|id| value(id) / JOB_ID_LOW == tick));
        // The next tick's ids come after this tick's, in text order as in value.
        let next = new_job_id(now + JOB_ID_TICK as i64);
        assert_eq!(value(&next) / JOB_ID_LOW, tick + 1);
        assert!(ids.iter().all(|id| *id < next), "{next}");
        // The time part comes round after JOB_ID_TICKS ticks.
        let round = new_job_id(now + (JOB_ID_TICKS * JOB_ID_TICK) as i64);
        assert_eq!(value(&round) / JOB_ID_LOW, tick);
    }

    #[test]
    fn ordered_ids_sort_by_time_and_differ_within_a_microsecond() {
        let early = ordered_id("msg", 1_764_000_000_000_000);
        let same = ordered_id("msg", 1_764_000_000_000_000);
        let later = ordered_id("msg", 1_764_000_000_000_001);
        let much_later = ordered_id("msg", 1_864_000_000_000_000);
        assert!(
            early.starts_with("msg_") && early.len() == 4 + 24,
            "{early}"
        );
        assert!(early.bytes().skip(4).all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(early, same);
        assert_eq!(early[..14], same[..14]);
        assert!(
            early < later && later < much_later,
            "{early} {later} {much_later}"
        );
    }

    #[test]
    fn result_secret_has_at_least_128_bits() {
        assert_eq!(new_result_secret().len() * 4, 160);
    }

    #[test]
    fn token_hash_is_stable_and_distinct() {
        assert_eq!(token_hash("a"), token_hash("a"));
        assert_ne!(token_hash("a"), token_hash("b"));
        assert_ne!(new_api_token(), new_api_token());
    }
}
