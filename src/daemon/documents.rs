//! The operator documents about entries and pushes, shared by the control API, the CLI and `state`:
//! `/entries` (a filtered page), `/entries/{id}` (one entry with its state on every target), the plan of a
//! push (`/push/plan`, `secutix-sync push`), and the body of `POST /resync`.
//!
//! They only read the store and the outbox, so they work with or without a running daemon.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Config;
use crate::push::{Outbox, StoredEntry};
use crate::store::StoreError;

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

fn sync_state(cfg: &Config, outbox: &Outbox, external_id: &str, hash: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for t in &cfg.targets {
        let name = t.name.as_str();
        let ack = outbox.acked(name, external_id).ok().flatten();
        let state = if outbox.pending_item(name, external_id).ok().flatten().is_some() {
            "pending"
        } else if outbox.is_dead(name, external_id).unwrap_or(false) {
            "dead"
        } else if ack.as_ref().is_some_and(|a| a.content_hash == hash) {
            "synced"
        } else if ack.is_none() {
            "not_sent"
        } else {
            "outdated"
        };
        out.insert(name.to_owned(), json!(state));
    }
    out
}

/// The `/entries` document. An unknown `availability` value is refused (it would match nothing).
pub fn entries_document(cfg: &Config, outbox: &Outbox, q: &EntriesQuery) -> Result<Value, EntriesError> {
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
        rows.push(json!({
            "external_id": entry.external_id,
            "product_code": entry.product_code,
            "title": entry.title,
            "published": entry.published,
            "on_sale": entry.on_sale,
            "availability": entry.availability,
            "next_performance": entry.next_performance.as_ref().and_then(|n| n.start.clone()),
            "targets": sync_state(cfg, outbox, &entry.external_id, &content_hash),
        }));
    }
    Ok(json!({ "total": total, "offset": offset, "entries": rows }))
}

/// `secutix-<id>` for a bare product id, else the id as given.
pub fn external_id_of(id: &str) -> String {
    match id.trim().parse::<i64>() {
        Ok(n) => crate::entry::external_id(n),
        Err(_) => id.trim().to_owned(),
    }
}

/// One entry with its state on every target (`GET /entries/{id}`); `None` when there is no such entry.
pub fn entry_document(cfg: &Config, outbox: &Outbox, id: &str) -> Result<Option<Value>, StoreError> {
    let external_id = external_id_of(id);
    let Some(stored) = outbox.entry(&external_id)? else {
        return Ok(None);
    };
    let states = sync_state(cfg, outbox, &external_id, &stored.content_hash);
    let mut targets = serde_json::Map::new();
    for t in &cfg.targets {
        let name = t.name.as_str();
        let dead: Vec<_> = outbox
            .dead_letters(&[name.to_owned()])?
            .into_iter()
            .filter(|d| d.item.external_id == external_id)
            .collect();
        targets.insert(
            name.to_owned(),
            json!({
                "state": states.get(name),
                "acked": outbox.acked(name, &external_id)?,
                "pending": outbox.pending_item(name, &external_id)?,
                "dead_letters": dead,
            }),
        );
    }
    Ok(Some(json!({
        "content_hash": stored.content_hash,
        "entry": stored.entry,
        "targets": targets,
    })))
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
) -> Value {
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
    let rows: Vec<Value> = targets
        .iter()
        .map(|t| {
            let p = plan.targets.get(&t.name).cloned().unwrap_or_default();
            let operations: Vec<Value> = p
                .operations
                .iter()
                .map(|(kind, id, first)| {
                    let op = match (kind, first) {
                        (crate::targets::OpKind::Upsert, true) => "create",
                        (crate::targets::OpKind::Upsert, false) => "update",
                        (k, _) => k.as_str(),
                    };
                    json!({"op": op, "external_id": id, "title": title(id)})
                })
                .collect();
            json!({
                "name": t.name,
                "kind": t.kind.name(),
                "create": p.create, "update": p.update, "unpublish": p.unpublish, "delete": p.delete,
                "unchanged": p.unchanged, "dead": p.dead, "dropped": p.dropped, "skipped": p.skipped,
                "waiting": outbox.depth(&t.name).unwrap_or(0),
                "operations": operations,
            })
        })
        .collect();
    json!({"entries": plan.entries, "changed_entries": plan.changed_entries, "targets": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_availability_filter_values_are_the_statuses() {
        let names: Vec<&str> = AVAILABILITY_FILTERS
            .iter()
            .map(|f| {
                serde_json::from_value::<crate::indicator::AvailabilityStatus>(json!(f))
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
