//! Standard Webhooks signing: every delivery carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature`, where the signature is `v1,` + base64(HMAC-SHA256(key bytes,
//! "<id>.<timestamp>.<body>")), one item per valid key, space-separated (so a renewed key
//! and the previous one both sign during the grace). [`verify`] is what a subscriber runs;
//! the tests' receiver uses it, and it is offered to Rust subscribers as it is.
//!
//! Beside them, every delivery carries Shoptet's `Shoptet-Webhook-Signature`
//! ([`shoptet_signature`]): the lowercase hex HMAC-SHA1 of the body keyed with the current
//! secret exactly as the e-shop received it, which Shoptet's SDKs check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// The prefix of every signing key as shown to e-shops.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a delivery's timestamp may be from the verifier's clock (replay window).
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a secret or a delivery was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum SigningError {
    /// The secret is not `whsec_` + base64.
    BadSecret,
    /// The `webhook-timestamp` is not a number.
    BadTimestamp,
    /// The timestamp is further from now than the tolerance (stale or from the future).
    StaleTimestamp,
    /// No `v1,` item of the signature header matches.
    NoMatchingSignature,
}

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigningError::BadSecret => "the signing secret is not whsec_ followed by base64",
            SigningError::BadTimestamp => "webhook-timestamp is not a Unix time in seconds",
            SigningError::StaleTimestamp => "webhook-timestamp is outside the tolerance",
            SigningError::NoMatchingSignature => "no signature matches",
        })
    }
}

impl std::error::Error for SigningError {}

/// The key bytes of a `whsec_…` secret.
pub fn secret_bytes(secret: &str) -> Result<Vec<u8>, SigningError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::BadSecret)?;
    if bytes.is_empty() {
        return Err(SigningError::BadSecret);
    }
    Ok(bytes)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// One signature item, `v1,<base64>`, of a message under one secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SigningError> {
    let key = secret_bytes(secret)?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac(&key, id, timestamp, body))
    ))
}

/// The `webhook-signature` header value: one item per secret, space-separated.
pub fn signature_header(
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let items: Result<Vec<String>, SigningError> = secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect();
    Ok(items?.join(" "))
}

/// The header carrying Shoptet's signature.
pub const SHOPTET_SIGNATURE_HEADER: &str = "shoptet-webhook-signature";

/// Shoptet's signature of a body: lowercase hex HMAC-SHA1 keyed with the bytes of the
/// secret string as given out (`whsec_…` included, not decoded).
pub fn shoptet_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a delivery as a subscriber should: the timestamp within `tolerance_secs` of
/// `now_secs`, and at least one `v1,` item equal to the expected signature. Items are
/// compared in constant time, and only when their length is the expected one, so an empty
/// or truncated signature never passes.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SigningError> {
    let key = secret_bytes(secret)?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SigningError::BadTimestamp)?;
    if (now_secs - ts).abs() > tolerance_secs {
        return Err(SigningError::StaleTimestamp);
    }
    let expected = mac(&key, id, ts, body);
    let matched = signature_header.split(' ').any(|item| {
        let Some(encoded) = item.strip_prefix("v1,") else {
            return false;
        };
        match STANDARD.decode(encoded) {
            Ok(given) if given.len() == expected.len() => bool::from(given.ct_eq(&expected)),
            _ => false,
        }
    });
    if matched {
        Ok(())
    } else {
        Err(SigningError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(header: &str, now: i64) -> Result<(), SigningError> {
        verify(SECRET, ID, &TS.to_string(), header, BODY, now, 300)
    }

    #[test]
    fn signs_the_specifications_example() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), EXPECTED);
    }

    #[test]
    fn verifies_the_example_and_any_matching_item() {
        assert_eq!(check(EXPECTED, TS), Ok(()));
        assert_eq!(check(&format!("v1,bm9wZQ== {EXPECTED}"), TS + 10), Ok(()));
        let other = "whsec_".to_string() + &STANDARD.encode([7u8; 24]);
        let both = signature_header(&[other.clone(), SECRET.to_string()], ID, TS, BODY).unwrap();
        assert_eq!(both.split(' ').count(), 2);
        assert_eq!(check(&both, TS), Ok(()));
    }

    #[test]
    fn shoptet_signature_is_hex_hmac_sha1_of_the_key_string() {
        // RFC 2202 test case 2: HMAC-SHA1 with key "Jefe".
        assert_eq!(
            shoptet_signature("Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_ne!(
            shoptet_signature(SECRET, BODY),
            shoptet_signature(&SECRET[6..], BODY),
            "keyed with the whole string as given out"
        );
    }

    #[test]
    fn rejects_empty_truncated_wrong_and_stale() {
        let no = Err(SigningError::NoMatchingSignature);
        assert_eq!(check("", TS), no);
        assert_eq!(check("v1,", TS), no);
        assert_eq!(check(&EXPECTED[..EXPECTED.len() - 4], TS), no);
        assert_eq!(check("v1,g0hM9SsE", TS), no);
        assert_eq!(check(&EXPECTED.replace("v1,", "v2,"), TS), no);
        assert_eq!(
            check("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", TS),
            no
        );
        let tampered = verify(SECRET, ID, &TS.to_string(), EXPECTED, b"{}", TS, 300);
        assert_eq!(tampered, no);
        assert_eq!(check(EXPECTED, TS + 301), Err(SigningError::StaleTimestamp));
        assert_eq!(check(EXPECTED, TS - 301), Err(SigningError::StaleTimestamp));
        let bad_ts = verify(SECRET, ID, "soon", EXPECTED, BODY, TS, 300);
        assert_eq!(bad_ts, Err(SigningError::BadTimestamp));
        assert_eq!(sign("whsec_", ID, TS, BODY), Err(SigningError::BadSecret));
    }
}
