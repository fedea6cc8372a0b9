//! The operator documents about entries and pushes, shared by the control API, the CLI and `state`:
//! `/entries` (a filtered page), `/entries/{id}` (one entry with its state on every target), the plan of a
//! push (`/push/plan`, `secutix-sync push`), and the body of `POST /resync`.
//!
//! They only read the store and the outbox, so they work with or without a running daemon. Each is a typed
//! document ([`EntriesDocument`], [`EntryDocument`], [`PlanDocument`], [`ResyncScope`]): the control API
//! serialises it, the CLI deserialises the same type; nothing is read back by string keys.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::Translated;
use crate::config::Config;
use crate::entry::Entry;
use crate::indicator::Availability;
use crate::push::{AckRecord, DeadLetter, Outbox, OutboxItem, StoredEntry};
use crate::store::StoreError;

/// What a resync covers (`POST /resync`'s `scope`, `secutix-sync resync`'s flags). On the wire it is the
/// text `all`, `catalogue`, `availability`, `product:<id>`, `push` or `push --full` ([`ResyncScope::as_text`],
/// and [`str::parse`] back, whose error says what is valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncScope {
    /// A catalogue import, then (when availability is enabled) a poll; each plans and pushes.
    All,
    /// A catalogue import.
    Catalogue,
    /// An availability poll.
    Availability,
    /// Fresh availability for one product, then its entry re-sent to every target.
    Product(crate::catalog::Id),
    /// A plan of what changed, and the push.
    Push,
    /// Every entry re-sent to every target.
    FullPush,
}

impl ResyncScope {
    /// The scope as `POST /resync` takes it.
    pub fn as_text(&self) -> String {
        match self {
            ResyncScope::All => "all".into(),
            ResyncScope::Catalogue => "catalogue".into(),
            ResyncScope::Availability => "availability".into(),
            ResyncScope::Product(id) => format!("product:{id}"),
            ResyncScope::Push => "push".into(),
            ResyncScope::FullPush => "push --full".into(),
        }
    }

    /// The `secutix-sync resync` flag that asks for it (`--product 42`, `--catalogue`…).
    pub fn flag(&self) -> String {
        match self {
            ResyncScope::Product(id) => format!("--product {id}"),
            ResyncScope::FullPush => "--full-push".into(),
            other => format!("--{}", other.as_text()),
        }
    }
}

impl std::str::FromStr for ResyncScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "all" => ResyncScope::All,
            "catalogue" => ResyncScope::Catalogue,
            "availability" => ResyncScope::Availability,
            "push" => ResyncScope::Push,
            "push --full" | "push-full" | "full-push" => ResyncScope::FullPush,
            p if p.starts_with("product:") => ResyncScope::Product(
                p["product:".len()..]
                    .trim()
                    .parse()
                    .map_err(|_| format!("{p:?}: expected product:<SecuTix product id>"))?,
            ),
            other => {
                return Err(format!(
                    "unknown scope {other:?}: use all, catalogue, availability, product:<id>, push or \"push --full\""
                ));
            }
        })
    }
}

/// Where an entry stands on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// An operation for it waits in the outbox.
    Pending,
    /// Its operation failed for good (a dead letter).
    Dead,
    /// The target acknowledged this very version.
    Synced,
    /// Never sent to this target.
    NotSent,
    /// The target has an older version; the next plan queues this one.
    Outdated,
}

impl SyncState {
    /// The state's name (`pending`, `synced`…).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Pending => "pending",
            SyncState::Dead => "dead",
            SyncState::Synced => "synced",
            SyncState::NotSent => "not_sent",
            SyncState::Outdated => "outdated",
        }
    }
}

/// One row of `GET /entries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRow {
    /// `secutix-<productId>`.
    pub external_id: String,
    /// SecuTix product code.
    pub product_code: Option<String>,
    /// Title per language.
    pub title: Translated,
    /// Published on the targets.
    pub published: bool,
    /// On sale now.
    pub on_sale: bool,
    /// Rolled-up indicator.
    pub availability: Availability,
    /// Start of the next performance (venue time zone).
    pub next_performance: Option<String>,
    /// Its state on every configured target.
    pub targets: BTreeMap<String, SyncState>,
}

/// `GET /entries`: a filtered page of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntriesDocument {
    /// Entries matching the filters (all pages).
    pub total: usize,
    /// Entries skipped before this page.
    pub offset: usize,
    /// This page.
    pub entries: Vec<EntryRow>,
}

/// One target's side of an entry (`GET /entries/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryOnTarget {
    /// Where it stands.
    pub state: Option<SyncState>,
    /// What the target last acknowledged.
    pub acked: Option<AckRecord>,
    /// The operation waiting in the outbox, if any.
    pub pending: Option<OutboxItem>,
    /// Its dead letters on this target.
    pub dead_letters: Vec<DeadLetter>,
}

/// `GET /entries/{id}`: one entry with its state on every target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryDocument {
    /// The hash targets are compared with.
    pub content_hash: String,
    /// The entry.
    pub entry: Entry,
    /// Its side on every configured target.
    pub targets: BTreeMap<String, EntryOnTarget>,
}

/// One operation of a plan as operators read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOperation {
    /// `create`, `update`, `unpublish` or `delete`.
    pub op: String,
    /// The entry.
    pub external_id: String,
    /// The product's title in the first language.
    pub title: String,
}

/// One target's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetPlanDocument {
    /// The target.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Entries it does not have yet.
    pub create: u64,
    /// Entries it has in an older version.
    pub update: u64,
    /// Entries to unpublish.
    pub unpublish: u64,
    /// Entries to delete.
    pub delete: u64,
    /// Entries it already has.
    pub unchanged: u64,
    /// Entries whose version is a dead letter.
    pub dead: u64,
    /// Operations dropped (kept by `delete_policy = "keep"`).
    pub dropped: u64,
    /// Products its kind does not select.
    pub skipped: u64,
    /// Operations already waiting in its outbox.
    pub waiting: usize,
    /// Each operation.
    pub operations: Vec<PlannedOperation>,
}

/// Which daemon computed a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// The plan of a push (`GET /push/plan`, `secutix-sync push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDocument {
    /// Entries built.
    pub entries: u64,
    /// Entries that changed since the last plan.
    pub changed_entries: u64,
    /// Per target, in the configuration's order.
    pub targets: Vec<TargetPlanDocument>,
    /// The daemon that computed it (through the control API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonInfo>,
}

/// Why `/entries` (or `entries list`) cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum EntriesError {
    /// A filter value that means nothing (`?availability=bogus`).
    #[error("{0}")]
    BadFilter(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The values of the `availability` filter.
pub const AVAILABILITY_FILTERS: &[&str] = &["available", "almost_full", "sold_out", "not_on_sale", "unknown"];

/// Filters of `GET /entries`.
#[derive(Debug, Default, Deserialize)]
pub struct EntriesQuery {
    /// Text in the external id, product code or title (case-insensitive).
    pub q: Option<String>,
    /// Rolled-up status: `available`, `almost_full`, `sold_out`, `not_on_sale`, `unknown`.
    pub availability: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Entries to skip.
    pub offset: Option<usize>,
}

fn sync_state(cfg: &Config, outbox: &Outbox, external_id: &str, hash: &str) -> BTreeMap<String, SyncState> {
    let mut out = BTreeMap::new();
    for t in &cfg.targets {
        let name = t.name.as_str();
        let ack = outbox.acked(name, external_id).ok().flatten();
        let state = if outbox.pending_item(name, external_id).ok().flatten().is_some() {
            SyncState::Pending
        } else if outbox.is_dead(name, external_id).unwrap_or(false) {
            SyncState::Dead
        } else if ack.as_ref().is_some_and(|a| a.content_hash == hash) {
            SyncState::Synced
        } else if ack.is_none() {
            SyncState::NotSent
        } else {
            SyncState::Outdated
        };
        out.insert(name.to_owned(), state);
    }
    out
}

/// The `/entries` document. An unknown `availability` value is refused (it would match nothing).
pub fn entries_document(cfg: &Config, outbox: &Outbox, q: &EntriesQuery) -> Result<EntriesDocument, EntriesError> {
    if let Some(a) = q.availability.as_deref()
        && !AVAILABILITY_FILTERS.contains(&a)
    {
        return Err(EntriesError::BadFilter(format!(
            "availability {a:?} is not a status: use one of {}",
            AVAILABILITY_FILTERS.join(", ")
        )));
    }
    let needle = q.q.as_deref().map(str::to_lowercase);
    let mut rows = Vec::new();
    let mut total = 0usize;
    let (offset, limit) = (q.offset.unwrap_or(0), q.limit.unwrap_or(100).min(1000));
    for stored in outbox.each_entry() {
        let StoredEntry { content_hash, entry } = stored?;
        if let Some(n) = &needle {
            let hay = format!(
                "{} {} {:?}",
                entry.external_id,
                entry.product_code.clone().unwrap_or_default(),
                entry.title.0
            )
            .to_lowercase();
            if !hay.contains(n) {
                continue;
            }
        }
        if let Some(a) = &q.availability
            && entry.availability.status.as_str() != a
        {
            continue;
        }
        total += 1;
        if total <= offset || rows.len() >= limit {
            continue;
        }
        rows.push(EntryRow {
            targets: sync_state(cfg, outbox, &entry.external_id, &content_hash),
            next_performance: entry.next_performance.as_ref().and_then(|n| n.start.clone()),
            external_id: entry.external_id,
            product_code: entry.product_code,
            title: entry.title,
            published: entry.published,
            on_sale: entry.on_sale,
            availability: entry.availability,
        });
    }
    Ok(EntriesDocument {
        total,
        offset,
        entries: rows,
    })
}

/// `secutix-<id>` for a bare product id, else the id as given.
pub fn external_id_of(id: &str) -> String {
    match id.trim().parse::<i64>() {
        Ok(n) => crate::entry::external_id(n),
        Err(_) => id.trim().to_owned(),
    }
}

/// One entry with its state on every target (`GET /entries/{id}`); `None` when there is no such entry.
pub fn entry_document(cfg: &Config, outbox: &Outbox, id: &str) -> Result<Option<EntryDocument>, StoreError> {
    let external_id = external_id_of(id);
    let Some(stored) = outbox.entry(&external_id)? else {
        return Ok(None);
    };
    let states = sync_state(cfg, outbox, &external_id, &stored.content_hash);
    let mut targets = BTreeMap::new();
    for t in &cfg.targets {
        let name = t.name.as_str();
        let dead: Vec<_> = outbox
            .dead_letters(&[name.to_owned()])?
            .into_iter()
            .filter(|d| d.item.external_id == external_id)
            .collect();
        targets.insert(
            name.to_owned(),
            EntryOnTarget {
                state: states.get(name).copied(),
                acked: outbox.acked(name, &external_id)?,
                pending: outbox.pending_item(name, &external_id)?,
                dead_letters: dead,
            },
        );
    }
    Ok(Some(EntryDocument {
        content_hash: stored.content_hash,
        entry: stored.entry,
        targets,
    }))
}

/// The body of `POST /resync`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResyncRequest {
    /// `all`, `catalogue`, `availability`, `product:<id>`, `push` or `push --full`.
    pub scope: String,
    /// For `catalogue` and `all`: bypass the shrink guard and re-read an identical response.
    #[serde(default)]
    pub force: bool,
}

/// The plan of a push as operators read it (`secutix-sync push`, `GET /push/plan`): per target, in the
/// configuration's order, the counts and each operation with the product's title.
pub fn plan_document(
    targets: &[&crate::targets::registry::TargetConfig],
    plan: &crate::push::PlanReport,
    outbox: &Outbox,
    view: &crate::store::CatalogView,
    options: &crate::merge::EntryOptions,
) -> PlanDocument {
    let langs = if options.languages.is_empty() {
        view.meta.pos.as_ref().map(|p| p.languages.clone()).unwrap_or_default()
    } else {
        options.languages.clone()
    };
    let lang = langs.first().map_or("fr", String::as_str);
    let title = |external_id: &str| -> String {
        crate::entry::product_id_of(external_id)
            .and_then(|id| view.product(id).ok().flatten())
            .and_then(|r| r.product.name.get(lang, &[]).map(str::to_owned))
            .unwrap_or_default()
    };
    let rows: Vec<TargetPlanDocument> = targets
        .iter()
        .map(|t| {
            let p = plan.targets.get(&t.name).cloned().unwrap_or_default();
            let operations: Vec<PlannedOperation> = p
                .operations
                .iter()
                .map(|(kind, id, first)| {
                    let op = match (kind, first) {
                        (crate::targets::OpKind::Upsert, true) => "create",
                        (crate::targets::OpKind::Upsert, false) => "update",
                        (k, _) => k.as_str(),
                    };
                    PlannedOperation {
                        op: op.to_owned(),
                        external_id: id.clone(),
                        title: title(id),
                    }
                })
                .collect();
            TargetPlanDocument {
                name: t.name.clone(),
                kind: t.kind.name().to_owned(),
                create: p.create,
                update: p.update,
                unpublish: p.unpublish,
                delete: p.delete,
                unchanged: p.unchanged,
                dead: p.dead,
                dropped: p.dropped,
                skipped: p.skipped,
                waiting: outbox.depth(&t.name).unwrap_or(0),
                operations,
            }
        })
        .collect();
    PlanDocument {
        entries: plan.entries,
        changed_entries: plan.changed_entries,
        targets: rows,
        daemon: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resync_scope_reads_back_what_it_writes() {
        for scope in [
            ResyncScope::All,
            ResyncScope::Catalogue,
            ResyncScope::Availability,
            ResyncScope::Product(42),
            ResyncScope::Push,
            ResyncScope::FullPush,
        ] {
            assert_eq!(scope.as_text().parse::<ResyncScope>(), Ok(scope));
        }
        assert_eq!("push-full".parse::<ResyncScope>(), Ok(ResyncScope::FullPush));
        assert_eq!(ResyncScope::Product(42).flag(), "--product 42");
        assert_eq!(ResyncScope::Catalogue.flag(), "--catalogue");
        let e = "product:x".parse::<ResyncScope>().expect_err("not an id");
        assert!(e.contains("expected product:<SecuTix product id>"), "{e}");
        let e = "everything".parse::<ResyncScope>().expect_err("unknown");
        assert!(e.starts_with("unknown scope \"everything\""), "{e}");
    }

    #[test]
    fn the_availability_filter_values_are_the_statuses() {
        let names: Vec<&str> = AVAILABILITY_FILTERS
            .iter()
            .map(|f| {
                serde_json::from_value::<crate::indicator::AvailabilityStatus>(serde_json::json!(f))
                    .unwrap_or_else(|e| panic!("{f}: {e}"))
                    .as_str()
            })
            .collect();
        assert_eq!(names, AVAILABILITY_FILTERS);
    }

    #[test]
    fn bare_product_ids_become_external_ids() {
        assert_eq!(external_id_of("1000"), "secutix-1000");
        assert_eq!(external_id_of(" secutix-1000 "), "secutix-1000");
    }
}

/// The daemon's answer to `POST /resync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncAnswer {
    /// `accepted` or `already_running`.
    pub status: String,
    /// The job that runs it (`catalogue`, `availability`, `refresh`).
    pub job: String,
    /// The run that covers the request.
    pub run: u64,
    /// The scope as asked.
    #[serde(default)]
    pub scope: String,
    /// A job the run chains into (`availability` after the import of `resync all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
    /// For operators.
    pub message: String,
}

impl ResyncAnswer {
    /// True when the request was merged into a run already in progress or requested.
    pub fn already_running(&self) -> bool {
        self.status == "already_running"
    }
}

/// `GET /dlq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLettersDocument {
    /// The dead letters of the targets asked for.
    pub dead_letters: Vec<crate::push::DeadLetter>,
}

/// `POST /dlq/…/replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayAnswer {
    /// Dead letters put back in the outbox.
    pub replayed: u64,
    /// Dead letters dropped because a newer version of their entry was queued since.
    pub superseded: u64,
}

/// `DELETE /dlq/…`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropAnswer {
    /// The dead letter dropped.
    pub dropped: crate::push::DeadLetter,
}

/// `GET /readyz`: ready once a good catalogue import is younger than `daemon.catalogue_max_age`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyDocument {
    /// Ready (the answer is 200; 503 otherwise).
    pub ready: bool,
    /// Why not.
    pub reason: Option<String>,
    /// `open` or `failing`.
    pub store: String,
    /// When the last good import finished.
    pub last_good_import: Option<DateTime<Utc>>,
    /// `daemon.catalogue_max_age`, in seconds.
    pub catalogue_max_age_secs: u64,
}
