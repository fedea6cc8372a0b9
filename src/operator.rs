//! One interface to what an operator asks of secutix-sync, written once for both places it can be answered:
//! the running daemon, through its control API ([`Operator::Remote`]), or the store itself when no daemon
//! runs ([`Operator::Local`]). The answers are the typed documents of [`crate::daemon::documents`] either way,
//! so every command prints one shape whatever answered it.
//!
//! Only what both sides can do is here: reading entries, and listing, replaying and dropping dead letters.
//! What only the daemon does (resync, following a run) is the control API's client ([`crate::cli_client`]);
//! what only works on the store (`state`) reads it directly.

use crate::cli_client::{ClientError, ControlClient};
use crate::config::Config;
use crate::daemon::documents::{
    EntriesDocument, EntriesError, EntriesQuery, EntryDocument, entries_document, entry_document,
};
use crate::push::{DeadLetter, Outbox, PushError};
use crate::store::{Store, StoreError};

/// The store side of [`Operator`]: the configuration, the store and its outbox.
pub struct Local {
    config: Config,
    store: Store,
    outbox: Outbox,
    /// Configured targets and those the store remembers (a target removed from the configuration keeps its
    /// dead letters).
    known: Vec<String>,
}

impl Local {
    /// The store's side, for `config`.
    pub fn new(config: Config, store: Store) -> Result<Self, StoreError> {
        let outbox = Outbox::open(&store)?;
        let mut known: Vec<String> = config.targets.iter().map(|t| t.name.clone()).collect();
        for name in outbox.targets_in_store() {
            if !known.contains(&name) {
                known.push(name);
            }
        }
        Ok(Self {
            config,
            store,
            outbox,
            known,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Who answers: the running daemon, or the store.
pub enum Operator {
    /// The running daemon, through its control API.
    Remote(ControlClient),
    /// The store itself (no daemon runs on it).
    Local(Box<Local>),
}

/// Why an operator's request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No such target (neither configured nor remembered by the store).
    #[error("{0}")]
    NoTarget(String),
    /// No such dead letter.
    #[error("{0}")]
    NotFound(String),
    /// A filter that means nothing (`--availability bogus`).
    #[error("{0}")]
    BadRequest(String),
    /// The daemon could not be asked, or refused.
    #[error(transparent)]
    Daemon(#[from] ClientError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EntriesError> for OperatorError {
    fn from(e: EntriesError) -> Self {
        match e {
            EntriesError::BadFilter(m) => OperatorError::BadRequest(m),
            EntriesError::Store(e) => OperatorError::Store(e),
        }
    }
}

impl From<PushError> for OperatorError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::NotFound(m) => OperatorError::NotFound(m),
            PushError::Store(e) => OperatorError::Store(e),
        }
    }
}

impl Operator {
    /// True when the running daemon answers.
    pub fn is_daemon(&self) -> bool {
        matches!(self, Operator::Remote(_))
    }

    /// One entry with its state on every target; `None` when there is no such entry.
    pub async fn entry(&self, id: &str) -> Result<Option<EntryDocument>, OperatorError> {
        match self {
            Operator::Remote(c) => Ok(c.entry(id).await?),
            Operator::Local(l) => Ok(entry_document(&l.config, &l.outbox, id)?),
        }
    }

    /// A filtered page of entries.
    pub async fn entries(&self, q: &EntriesQuery) -> Result<EntriesDocument, OperatorError> {
        match self {
            Operator::Remote(c) => match c.entries(q).await {
                Err(ClientError::Api { status: 400, message }) => Err(OperatorError::BadRequest(message)),
                other => Ok(other?),
            },
            Operator::Local(l) => Ok(entries_document(&l.config, &l.outbox, q)?),
        }
    }

    /// The dead letters of `target`, or of every target.
    pub async fn dead_letters(&self, target: Option<&str>) -> Result<Vec<DeadLetter>, OperatorError> {
        match self {
            Operator::Remote(c) => match c.dead_letters(target).await {
                Err(ClientError::Api { status: 404, message }) => Err(OperatorError::NoTarget(message)),
                other => Ok(other?),
            },
            Operator::Local(l) => {
                let scope = match target {
                    Some(t) if l.known.iter().any(|k| k == t) => vec![t.to_owned()],
                    Some(t) => {
                        return Err(OperatorError::NoTarget(format!(
                            "no target named {t:?} in the configuration or the store (targets: {})",
                            if l.known.is_empty() {
                                "none".to_owned()
                            } else {
                                l.known.join(", ")
                            }
                        )));
                    }
                    None => l.known.clone(),
                };
                Ok(l.outbox.dead_letters(&scope)?)
            }
        }
    }

    /// Replays `target`'s dead letter `id`, or all of them: (replayed, superseded by a newer version).
    pub async fn replay(&self, target: &str, id: Option<u64>) -> Result<(u64, u64), OperatorError> {
        match self {
            Operator::Remote(c) => match c.replay(target, id).await {
                Err(ClientError::Api { status: 404, message }) => Err(OperatorError::NotFound(message)),
                other => Ok(other?),
            },
            Operator::Local(l) => Ok(l.outbox.replay(target, id)?),
        }
    }

    /// Drops `target`'s dead letter `id`.
    pub async fn drop_dead_letter(&self, target: &str, id: u64) -> Result<DeadLetter, OperatorError> {
        match self {
            Operator::Remote(c) => match c.drop_dead_letter(target, id).await {
                Err(ClientError::Api { status: 404, message }) => Err(OperatorError::NotFound(message)),
                other => Ok(other?),
            },
            Operator::Local(l) => Ok(l.outbox.drop_dead_letter(target, id)?),
        }
    }
}
