//! The long-running service: scheduling, single-flight jobs, push workers, shutdown and reload.
pub mod jobs;
