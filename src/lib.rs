//! secutix-sync keeps a venue's website CMS in step with its SecuTix ticketing catalogue.
//!
//! # Layout
//! - [`config`]: layered configuration (defaults → file → `SECUTIX_SYNC__…` environment), validation,
//!   unknown-key warnings, secrets.
//! - [`secutix`]: the SecuTix client (REST JSON and SOAP XML), authentication, rate limits, the
//!   `in_progress` protocol, and the streaming, lenient parsers ([`secutix::json`], [`secutix::xml`]).
//! - [`catalog`]: the domain model every parser produces.
//! - [`store`]: everything sled: catalogue generations switched atomically, tombstones, the shrink guard,
//!   import history, the SecuTix call ledger, the repair at open of the snapshot a full disk left unfinished.
//! - [`import`]: one catalogue import, end to end.
//! - [`availability`]: the green / orange / red indicator: lenient mapping, on-sale rules, the poller and its
//!   call-budget planner, the availability trees (dirty marks, change log, poll history).
//! - [`merge`]: entries (the JSON document a CMS receives), links, content hashes.
//! - [`entries`]: the latest entry of every product: bodies in append-only logs, a small sled index.
//! - [`push`]: the durable outbox per target, acknowledgements, dead letters, the push worker.
//! - [`targets`]: the CMS targets behind one trait (files, webhook, WordPress, Drupal, pass Culture with its
//!   contremarque calls), and the field ownership of the CMS ones.
//! - [`daemon`]: `secutix-sync run`: the jobs (catalogue cron with catch-up, availability polls, refresh),
//!   single-flight runs, push workers, shutdown with a grace period, reload, systemd notifications.
//! - [`control`]: the control API (status, resync, entries, metrics, dead letters) and the public
//!   availability endpoint for the website; [`cli_client`]: the CLI's HTTP client of it.
//! - [`state`]: `secutix-sync state`, the store's records read directly.
//! - [`check`]: live checks of SecuTix credentials and targets; [`logging`]: human, journald or JSON logs.
//! - [`clock`], [`ratelimit`]: time and pacing, both on tokio's clock so tests run on paused time.
//! - [`net`]: what every HTTP client and listener obeys: no redirects, no clear text beyond loopback,
//!   credentials in URLs redacted, listener limits (header-read and idle timeouts, a connection cap).
//! - [`testkit`]: an in-process HTTP mock for tests and benchmarks that need paused time.
//! - [`generator`]: deterministic catalogues of any size in every wire format (benchmarks, simulator, tests).
//! - [`simulator`]: a SecuTix simulator on loopback (catalogue and availability, REST and SOAP) for the
//!   demo, the benchmarks and the tests.
//! - [`demo`]: `secutix-sync demo`: the simulator, a demo configuration and store, the `files` target into
//!   `./demo-output/`, handed to the real daemon.

#![warn(missing_docs)]

pub mod availability;
pub mod backoff;
pub mod catalog;
pub mod check;
pub mod cli_client;
pub mod clock;
pub mod codec;
pub mod config;
pub mod control;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod entries;
pub mod entry;
pub mod fakes;
pub mod http;
pub mod import;
pub mod indicator;
pub mod logging;
pub mod merge;
pub mod net;
pub mod pipeline;
pub mod public;
pub mod push;
pub mod ratelimit;
pub mod secutix;
pub mod state;
pub mod store;
pub mod targets;
pub mod text;
