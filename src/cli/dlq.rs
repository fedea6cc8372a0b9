//! `secutix-sync dlq`: list, replay or drop dead letters, through the daemon when one runs, else on the store.

use super::*;

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

/// The `dlq` steps on the [`Operator`](secutix_sync::operator::Operator), whatever answers: its errors as
/// `dlq`'s exit codes.
fn failure(e: secutix_sync::operator::OperatorError) -> DlqFailure {
    use secutix_sync::operator::OperatorError;
    match e {
        OperatorError::NoTarget(message) => DlqFailure::NoTarget(message),
        OperatorError::NotFound(_) => DlqFailure::NoLetter,
        other => DlqFailure::Other(other.into()),
    }
}

/// Who sends a replayed operation.
fn sender(letters: &secutix_sync::operator::Operator, one: bool) -> &'static str {
    match (letters.is_daemon(), one) {
        (true, true) => "the daemon sends it now",
        (false, true) => "the next push (or the daemon) sends it",
        (true, false) => "the daemon sends them now",
        (false, false) => "the next push (or the daemon) sends them",
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
            secutix_sync::operator::Operator::Remote(client)
        }
        None => {
            let store = match open_store(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e:#}");
                    return Ok(ExitCode::from(push_exit::FAILED));
                }
            };
            secutix_sync::operator::Operator::Local(Box::new(secutix_sync::operator::Local::new(
                config.clone(),
                store,
            )?))
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
    letters: &secutix_sync::operator::Operator,
    command: DlqCommand,
) -> Result<ExitCode, DlqFailure> {
    let target = match &command {
        DlqCommand::List { target, .. } | DlqCommand::Replay { target, .. } | DlqCommand::Drop { target, .. } => {
            target.clone()
        }
    };
    // Also checks the target's name.
    let all = rt.block_on(letters.dead_letters(target.as_deref())).map_err(failure)?;
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
                secutix_sync::operator::Operator::Local(l) => l.store().time_zone(),
                secutix_sync::operator::Operator::Remote(c) => rt
                    .block_on(c.status())
                    .ok()
                    .and_then(|s| s.jobs.catalogue.time_zone.and_then(|t| t.parse().ok()))
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
            match rt.block_on(letters.replay(&d.target, Some(id))).map_err(failure) {
                Ok((1, _)) => println!(
                    "dead letter {id} ({} {}) is back in the outbox of {}: {}",
                    d.item.kind.as_str(),
                    d.item.external_id,
                    d.target,
                    sender(letters, true)
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
                let (r, s) = rt.block_on(letters.replay(t, None)).map_err(failure)?;
                if r + s > 0 {
                    println!("target {t}: {r} back in the outbox, {s} superseded by a newer operation");
                }
                replayed += r;
                superseded += s;
            }
            let sender = sender(letters, false);
            println!("{replayed} dead letter(s) replayed, {superseded} superseded; {sender}");
        }
        DlqCommand::Drop { id, .. } => {
            let Some(d) = all.iter().find(|d| d.id == id) else {
                return Err(missing(id));
            };
            match rt.block_on(letters.drop_dead_letter(&d.target, id)).map_err(failure) {
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
