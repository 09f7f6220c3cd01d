//! Worker pools that follow the hardware and the backlog: each queue's pool on this node
//! is sized from the CPUs the process may use and the job kinds' declared defaults
//! ([`settings`], [`cpus`]), grows while claimable jobs wait and shrinks when workers idle
//! ([`rule`], a pure function, fed by what the queue's claims show: [`shortage`]), and is
//! kept by its queue actor ([`workers`]).

pub mod cpus;
pub mod rule;
pub mod settings;
pub mod shortage;
pub mod workers;

pub use settings::{plan, QueueSettings};
