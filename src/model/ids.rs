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
