//! The `secutix-sync` command line: one file per subcommand, plus the shared helpers ([`common`]) and the
//! printing of the operator documents ([`print`]). `anyhow` lives here and in `main.rs`, nowhere deeper.
//!
//! The CLI holds no pipeline logic: planning, draining and target selection are the library's
//! (`secutix_sync::pipeline`), shared with the daemon and its control API.

use anyhow::Context;
use clap::{Parser, Subcommand};
use secutix_sync::availability::ProgressSink;
use secutix_sync::config::{Config, Loaded, Sources};
use secutix_sync::import::{ImportError, ImportOptions, run_import};
use secutix_sync::secutix::Client;
use secutix_sync::store::{ImportOutcome, ImportReport, Store};
use secutix_sync::targets::passculture::contremarque::{Action, BoxOffice, Lang, exit_code};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod args;
mod availability;
mod check;
mod common;
mod demo;
mod dlq;
mod entries;
mod import;
mod passculture;
mod print;
mod push;
mod resync;
mod run;
mod state;
mod status;
mod validate;

pub(crate) use args::*;
use availability::*;
use check::*;
pub(crate) use common::*;
use demo::*;
use dlq::*;
use entries::*;
use import::*;
use passculture::*;
use print::*;
use push::*;
use resync::*;
use run::*;
use state::*;
use status::*;
use validate::*;

/// Runs the command `cli` names; the process exits with the code it returns.
pub(crate) fn dispatch(cli: Cli, sources: Sources) -> ExitCode {
    let result = match cli.command {
        Command::ValidateConfig => Ok(validate_config_command(&sources)),
        Command::Import { force } => import_command(&sources, force),
        Command::Availability { product } => availability_command(&sources, product),
        Command::Run { once, push_wait } => run_command(&sources, once, push_wait),
        Command::Status { json } => status_command(&sources, json),
        Command::Resync {
            catalogue,
            availability,
            product,
            push,
            full_push,
            force,
            wait,
            timeout,
        } => {
            use secutix_sync::daemon::documents::ResyncScope;
            let scope = match (catalogue, availability, product, push, full_push) {
                (true, ..) => ResyncScope::Catalogue,
                (_, true, ..) => ResyncScope::Availability,
                (_, _, Some(id), ..) => ResyncScope::Product(id),
                (_, _, _, true, _) => ResyncScope::Push,
                (.., true) => ResyncScope::FullPush,
                _ => ResyncScope::All,
            };
            resync_command(&sources, scope, force, wait, timeout)
        }
        Command::Entries { action } => entries_command(&sources, action),
        Command::Check => check_command(&sources),
        Command::State { product, limit } => state_command(&sources, product, limit),
        Command::Passculture { action } => passculture_command(&sources, action),
        Command::Push(args) => push_command(&sources, args),
        Command::Dlq { action } => dlq_command(&sources, action),
        Command::Demo(args) => demo_command(&sources, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
