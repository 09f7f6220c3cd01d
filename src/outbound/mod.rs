//! Outbound HTTP: the one client through which jobline reaches other servers (webhook
//! deliveries, image downloads). It refuses non-public targets unless
//! `allow_private_targets` is set, checked on the resolved address at connect time so a
//! DNS answer cannot smuggle a private address past it (or, through `outbound_proxy`, on
//! the target's addresses before sending), ignores the environment's proxy variables, and
//! follows redirects only when asked, each hop checked again. Webhook deliveries are
//! signed by [`signing`].

pub mod guard;
pub mod signing;

pub use guard::{describe_error, is_public, FetchError, GuardedClient, OutboundPolicy};
