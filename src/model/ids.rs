//! Identifiers and secrets: job ids, result secrets, API tokens and their hashes.

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use sha2::{Digest, Sha256};

const JOB_ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a job id: the contract's "7 lower-case letters and digits".
pub const JOB_ID_LEN: usize = 7;

/// A new random job id (36^7 ≈ 7.8e10 values; a collision is retried by the writer).
pub fn new_job_id() -> String {
    let mut rng = rand::rng();
    (0..JOB_ID_LEN)
        .map(|_| JOB_ID_ALPHABET[rng.random_range(0..JOB_ID_ALPHABET.len())] as char)
        .collect()
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
        for _ in 0..1000 {
            let id = new_job_id();
            assert!(is_job_id(&id), "{id}");
        }
        assert!(!is_job_id("ABCDEFG"));
        assert!(!is_job_id("abc"));
        assert!(!is_job_id("abcdefgh"));
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
