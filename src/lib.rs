//! secutix-sync keeps a venue's website CMS in step with its SecuTix ticketing catalogue.
//!
//! # Layout
//!
//! A one-way house: each layer imports only the layers below it, never up, never in a cycle
//! (`ARCHITECTURE.md` at the root is the map; `tests/it/architecture.rs` checks it). Bottom to top:
//!
//! - Foundations: [`text`] (durations, truncation), [`clock`] (calendar time on tokio's clock), [`ratelimit`]
//!   (the token bucket), [`backoff`] (the one back-off), [`http`] (client hygiene: no redirects, no clear text
//!   beyond loopback, redacted credentials, snippets, `Retry-After`), [`net`] (listener limits), [`codec`] (the
//!   one sled codec), [`credentials`] (secret files), [`logging`].
//! - Domain types: [`catalog`] (the catalogue model), [`indicator`] (availability statuses, roll-up),
//!   [`entry`] (the document a CMS receives, its id and hash).
//! - [`secutix`]: the SecuTix client (REST and SOAP), its settings, ledger, bodies and lenient parsers.
//! - [`store`]: sled and the record files: generations switched atomically, the import transaction, history,
//!   the call ledger, the repair at open; [`import`]: one catalogue import, end to end.
//! - [`availability`]: the green / orange / red indicator, polled inside the call budget.
//! - [`merge`]: building entries (links, `[entries]`); [`entries`]: the latest entry of every product.
//! - [`push`]: the durable outbox per target, plans, dead letters, the worker, and the [`push::target::Target`]
//!   trait the targets implement.
//! - [`targets`]: the CMS kinds; [`targets::registry`]: every kind's settings, defaults, validation and
//!   construction, one arm each.
//! - [`config`]: loads the layers and assembles every module's settings.
//! - [`public`]: projections for the website (the availability document); [`pipeline`]: the steps shared by
//!   `run`, `run --once`, `push` and the control API; [`check`]: live checks.
//! - [`daemon`]: the jobs, their loops, reload, notifications, and the operator documents it builds.
//! - [`control`]: the control API (operators) and the public routes (the website).
//! - [`cli_client`]: the CLI's client of the control API; [`operator`]: one interface answered by the daemon
//!   or by the store, so each command is written once; [`state`]: the store read directly; [`demo`]; the
//!   [`fakes`] (catalogue generator, SecuTix simulator, HTTP mock) for the demo, benches and tests.
//!
//! The binary (`src/main.rs`, `src/cli/`) parses, sets up logging and dispatches; it holds no pipeline logic.

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
pub mod operator;
pub mod pipeline;
pub mod public;
pub mod push;
pub mod ratelimit;
pub mod secutix;
pub mod state;
pub mod store;
pub mod targets;
pub mod text;
