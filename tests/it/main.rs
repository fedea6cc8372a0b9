//! The integration tests, one binary (`cargo test --test it`): one module per concern, the shared helpers
//! and fixtures in `common/`. Run one module with `cargo test --test it faults::`, one test with its full
//! name (`cargo test --test it import::the_ten_minute_rule_holds_across_restarts`).
//!
//! The tests run on parallel threads of this one process: none sets an environment variable, changes the
//! current directory or installs a global tracing subscriber (a test capturing logs uses
//! `tracing::subscriber::set_default`, which holds for its own thread); what must be measured alone (the
//! binary's peak RSS) runs in a child process; the fault-injection tests run one at a time
//! (`#[serial_test::serial]`).

mod common;

mod architecture;
mod availability;
mod ci_wordpress;
mod cli_daemon;
mod cli_push_dlq;
mod daemon;
mod demo;
mod disk_full;
mod docs;
mod drupal;
mod entries;
mod faults;
mod fixtures;
mod fuzz;
mod hostile;
mod import;
mod network;
mod operator;
mod passculture;
mod published;
mod push;
mod push_batch;
mod simulator;
mod store_records;
mod systemd;
mod wordpress;
