//! Integration tests of the engine against the real app, on SQLite and PostgreSQL.

mod common;

mod bench;
mod dashboard;
mod dashboard_browser;
mod fencing;
mod http;
mod images;
mod jobs_list;
mod lifecycle;
mod metrics;
mod openapi;
mod pools;
mod process;
mod recovery;
mod reliability;
mod shoptet;
mod validation;
mod webhooks;
