//! Webhook delivery: the [`WebhookDispatcher`] claims due notifications, signs and posts
//! them, records every attempt and schedules the next one by [`retry`].

mod deliver;
mod dispatcher;
pub mod retry;
mod slots;

pub(crate) use dispatcher::claim_duration;
pub use dispatcher::WebhookDispatcher;
