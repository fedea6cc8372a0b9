//! `secutix-sync dlq`: list, replay or drop dead letters, through the daemon when one runs, else on the store.

use super::*;

/// Where `dlq` finds the dead letters: the running daemon (through its control API) or the store.
pub(crate) enum DeadLetters {
    Daemon(secutix_sync::cli_client::ControlClient),
    Store {
        outbox: secutix_sync::push::Outbox,
        tz: chrono_tz::Tz,
        /// Configured targets and those the store remembers (a target removed from the configuration keeps
        /// its dead letters).
        known: Vec<String>,
    },
}

/// Why a `dlq` step did not happen.
pub(crate) enum DlqFailure {
    /// No such target (exit 2).
    NoTarget(String),
    /// No such dead letter (exit 3).
    NoLetter,
    /// Anything else (exit 1).
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for DlqFailure {
    fn from(e: E) -> Self {
        DlqFailure::Other(e.into())
    }
}

impl DeadLetters {
    pub(crate) fn list(
        &self,
        rt: &tokio::runtime::Runtime,
        target: Option<&str>,
    ) -> Result<Vec<secutix_sync::push::DeadLetter>, DlqFailure> {
        use secutix_sync::cli_client::ClientError;
        match self {
            DeadLetters::Daemon(c) => match rt.block_on(c.dead_letters(target)) {
                Ok(l) => Ok(l),
                Err(ClientError::Api { status: 404, message }) => Err(DlqFailure::NoTarget(message)),
                Err(e) => Err(e.into()),
            },
            DeadLetters::Store { outbox, known, .. } => {
                let scope = match target {
                    Some(t) if known.iter().any(|k| k == t) => vec![t.to_owned()],
                    Some(t) => {
                        return Err(DlqFailure::NoTarget(format!(
                            "no target named {t:?} in the configuration or the store (targets: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        )));
                    }
                    None => known.clone(),
                };
                Ok(outbox.dead_letters(&scope)?)
            }
        }
    }

    pub(crate) fn replay(
        &self,
        rt: &tokio::runtime::Runtime,
        target: &str,
        id: Option<u64>,
    ) -> Result<(u64, u64), DlqFailure> {
        use secutix_sync::cli_client::ClientError;
        use secutix_sync::push::PushError;
        match self {
            DeadLetters::Daemon(c) => match rt.block_on(c.replay(target, id)) {
                Ok(r) => Ok(r),
                Err(ClientError::Api { status: 404, .. }) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
            DeadLetters::Store { outbox, .. } => match outbox.replay(target, id) {
                Ok(r) => Ok(r),
                Err(PushError::NotFound(_)) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
        }
    }

    pub(crate) fn drop(
        &self,
        rt: &tokio::runtime::Runtime,
        target: &str,
        id: u64,
    ) -> Result<secutix_sync::push::DeadLetter, DlqFailure> {
        use secutix_sync::cli_client::ClientError;
        use secutix_sync::push::PushError;
        match self {
            DeadLetters::Daemon(c) => match rt.block_on(c.drop_dead_letter(target, id)) {
                Ok(d) => Ok(d),
                Err(ClientError::Api { status: 404, .. }) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
            DeadLetters::Store { outbox, .. } => match outbox.drop_dead_letter(target, id) {
                Ok(d) => Ok(d),
                Err(PushError::NotFound(_)) => Err(DlqFailure::NoLetter),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Who sends a replayed operation.
    pub(crate) fn sender(&self) -> &'static str {
        match self {
            DeadLetters::Daemon(_) => "the daemon sends it now",
            DeadLetters::Store { .. } => "the next push (or the daemon) sends it",
        }
    }
}

pub(crate) fn dlq_command(sources: &Sources, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let config = match load_config_without_credentials(sources) {
        Ok(l) => l.config,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(push_exit::CONFIG));
        }
    };
    let rt = runtime()?;
    // Listing reads the same either way; a replay or a drop on the store is sent (or not) by the next push.
    let doing = (!matches!(command, DlqCommand::List { .. })).then_some("changing the dead letters in");
    let letters = match daemon_or_store(&config, &rt, doing)? {
        Some(client) => {
            eprintln!(
                "a secutix-sync daemon runs on this store: dead letters through its control API ({})",
                client.base_url()
            );
            DeadLetters::Daemon(client)
        }
        None => {
            let store = match open_store(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e:#}");
                    return Ok(ExitCode::from(push_exit::FAILED));
                }
            };
            let outbox = secutix_sync::push::Outbox::open(&store)?;
            let mut known: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
            for name in outbox.targets_in_store() {
                if !known.contains(&name) {
                    known.push(name);
                }
            }
            DeadLetters::Store {
                tz: store.time_zone(),
                outbox,
                known,
            }
        }
    };
    match dlq_run(&rt, &letters, command) {
        Ok(code) => Ok(code),
        Err(DlqFailure::NoTarget(message)) => {
            eprintln!("{message}");
            Ok(ExitCode::from(push_exit::CONFIG))
        }
        Err(DlqFailure::NoLetter) => Ok(ExitCode::from(push_exit::NO_SUCH_DEAD_LETTER)),
        Err(DlqFailure::Other(e)) => Err(e),
    }
}

pub(crate) fn dlq_run(
    rt: &tokio::runtime::Runtime,
    letters: &DeadLetters,
    command: DlqCommand,
) -> Result<ExitCode, DlqFailure> {
    let target = match &command {
        DlqCommand::List { target, .. } | DlqCommand::Replay { target, .. } | DlqCommand::Drop { target, .. } => {
            target.clone()
        }
    };
    // Also checks the target's name.
    let all = letters.list(rt, target.as_deref())?;
    let missing = |id: u64| {
        eprintln!(
            "no dead letter {id}{}; see `secutix-sync dlq list`",
            target.as_ref().map(|t| format!(" for target {t}")).unwrap_or_default()
        );
        DlqFailure::NoLetter
    };
    match command {
        DlqCommand::List { json, .. } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(ExitCode::from(push_exit::OK));
            }
            if all.is_empty() {
                println!("no dead letters");
                return Ok(ExitCode::from(push_exit::OK));
            }
            let tz = match letters {
                DeadLetters::Store { tz, .. } => *tz,
                DeadLetters::Daemon(c) => rt
                    .block_on(c.status())
                    .ok()
                    .and_then(|s| {
                        s["jobs"]["catalogue"]["time_zone"]
                            .as_str()
                            .and_then(|t| t.parse().ok())
                    })
                    .unwrap_or(chrono_tz::UTC),
            };
            println!(
                "{:<20} {:<16} {:<9} {:<24} {:>8}  FAILED AT",
                "ID", "TARGET", "OPERATION", "ENTRY", "ATTEMPTS"
            );
            for d in &all {
                println!(
                    "{:<20} {:<16} {:<9} {:<24} {:>8}  {}",
                    d.id,
                    d.target,
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.item.attempts,
                    d.failed_at
                        .with_timezone(&tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
                println!("    error: {}", d.error);
            }
            println!(
                "{} dead letter(s). `secutix-sync dlq replay ID` sends one again, `dlq drop ID` forgets it",
                all.len()
            );
        }
        DlqCommand::Replay { id: Some(id), .. } => {
            let Some(d) = all.iter().find(|d| d.id == id) else {
                return Err(missing(id));
            };
            match letters.replay(rt, &d.target, Some(id)) {
                Ok((1, _)) => println!(
                    "dead letter {id} ({} {}) is back in the outbox of {}: {}",
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.target,
                    letters.sender()
                ),
                Ok(_) => println!(
                    "dead letter {id} removed: a newer operation for {} is already waiting in the outbox of {}",
                    d.item.external_id, d.target
                ),
                Err(DlqFailure::NoLetter) => return Err(missing(id)),
                Err(e) => return Err(e),
            }
        }
        DlqCommand::Replay { id: None, .. } => {
            let mut scope: Vec<String> = target.into_iter().collect();
            for d in &all {
                if !scope.contains(&d.target) {
                    scope.push(d.target.clone());
                }
            }
            let (mut replayed, mut superseded) = (0, 0);
            for t in &scope {
                let (r, s) = letters.replay(rt, t, None)?;
                if r + s > 0 {
                    println!("target {t}: {r} back in the outbox, {s} superseded by a newer operation");
                }
                replayed += r;
                superseded += s;
            }
            let sender = match letters {
                DeadLetters::Daemon(_) => "the daemon sends them now",
                DeadLetters::Store { .. } => "the next push (or the daemon) sends them",
            };
            println!("{replayed} dead letter(s) replayed, {superseded} superseded; {sender}");
        }
        DlqCommand::Drop { id, .. } => {
            let Some(d) = all.iter().find(|d| d.id == id) else {
                return Err(missing(id));
            };
            match letters.drop(rt, &d.target, id) {
                Ok(d) => println!(
                    "dead letter {id} ({} {}) of {} dropped: this version is not sent again; a change of the \
                     entry is",
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.target
                ),
                Err(DlqFailure::NoLetter) => return Err(missing(id)),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ExitCode::from(push_exit::OK))
}
