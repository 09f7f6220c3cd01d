//! Plain domain types shared by every layer: ids, job statuses and their transitions, times.
//! Nothing here imports the rest of jobline.

pub mod ids;
pub mod job_status;
pub mod time;

pub use job_status::JobStatus;
pub use time::{Micros, Zone};
