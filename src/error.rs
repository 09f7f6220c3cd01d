//! Errors of the store and the engine. The HTTP layer maps them to the contract's codes;
//! nothing here knows about HTTP.

use std::fmt;

/// What a persistence actor answers when it cannot do what was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The row asked for does not exist for this e-shop.
    NotFound,
    /// A uniqueness rule would be broken (a product code, a webhook URL…); names the rule.
    Conflict(&'static str),
    /// The change is not allowed from the row's current state (e.g. killing a finished job).
    InvalidState(&'static str),
    /// The database failed; the text is for the log only.
    Database(String),
    /// The database cannot be reached (a lost connection, being replaced), or the actor
    /// that should answer is gone (shutting down): worth retrying later.
    Unavailable,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(what) => write!(f, "conflict: {what}"),
            StoreError::InvalidState(what) => write!(f, "invalid state: {what}"),
            StoreError::Database(e) => write!(f, "database error: {e}"),
            StoreError::Unavailable => f.write_str("store unavailable"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::DatabaseErrorKind::{ClosedConnection, UnableToSendCommand};
        match e {
            diesel::result::Error::NotFound => StoreError::NotFound,
            diesel::result::Error::DatabaseError(ClosedConnection | UnableToSendCommand, _) => {
                log::warn!("database connection lost: {e}");
                StoreError::Unavailable
            }
            other => StoreError::Database(other.to_string()),
        }
    }
}

/// No pooled connection could be had in time: the database is unreachable.
impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        log::warn!("no database connection: {e}");
        StoreError::Unavailable
    }
}

impl From<actix::MailboxError> for StoreError {
    fn from(_: actix::MailboxError) -> Self {
        StoreError::Unavailable
    }
}

/// Result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Whether a diesel error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
