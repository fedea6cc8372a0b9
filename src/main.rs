//! The `secutix-sync` binary: parse the command line, set up logging, dispatch to the command (`src/cli/`,
//! one file per subcommand). `anyhow` lives here and in `src/cli/`, nowhere deeper.

use std::process::ExitCode;

use clap::Parser;
use secutix_sync::config::{Config, Sources};

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Run { .. } | cli::Command::Demo { .. }) {
        cli::restore_sigpipe();
    }
    let sources = Sources {
        file: cli.config.clone(),
        ..Sources::default()
    };
    // Logging follows [logging] when the configuration reads; the commands report a bad one themselves.
    let logging = Config::load_without_credentials(&sources)
        .ok()
        .map(|l| l.config.logging);
    secutix_sync::logging::init(logging.as_ref());
    cli::dispatch(cli, sources)
}
