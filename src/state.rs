//! `secutix-sync state`: what the store holds, read directly, for an operator or a support engineer.
//!
//! `status` answers "is the daemon doing its job"; `state` shows the records behind it: the generation in
//! force, the import history, the SecuTix call ledger per service, the availability poller's bookkeeping, and,
//! for one product, its stored record, its polled availability and its entry with the sync state per target.
//! It opens the store itself, so it runs when no daemon holds the store (sled allows one process per store).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::availability::AvailabilityStore;
use crate::catalog::Id;
use crate::config::Config;
use crate::push::Outbox;
use crate::secutix::Service;
use crate::store::{Store, StoreError};

/// What `state` prints.
#[derive(Debug, Clone, Default)]
pub struct StateQuery {
    /// How many imports, polls and indicator changes to list.
    pub limit: usize,
    /// One product in detail.
    pub product: Option<Id>,
}

/// The `state` document: the store's summary, or one product in detail.
pub fn state_document(cfg: &Config, store: &Store, q: &StateQuery, now: DateTime<Utc>) -> Result<Value, StoreError> {
    match q.product {
        Some(id) => product_document(cfg, store, id, now),
        None => summary_document(cfg, store, q.limit, now),
    }
}

fn summary_document(cfg: &Config, store: &Store, limit: usize, now: DateTime<Utc>) -> Result<Value, StoreError> {
    let catalog = store.catalog()?;
    let avail = AvailabilityStore::new(store)?;
    let outbox = Outbox::open(store)?;
    let mut targets = serde_json::Map::new();
    let mut names: Vec<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();
    for t in outbox.targets_in_store() {
        if !names.contains(&t) {
            names.push(t);
        }
    }
    for name in &names {
        targets.insert(
            name.clone(),
            json!({
                "configured": cfg.targets.iter().any(|t| &t.name == name),
                "acknowledged": outbox.acks(name)?.len(),
                "outbox": outbox.depth(name)?,
                "dead_letters": outbox.dead_letters(std::slice::from_ref(name))?.len(),
            }),
        );
    }
    Ok(json!({
        "store": cfg.store.path,
        "now": now,
        "catalogue": catalog.as_ref().map(|c| json!({
            "generation": c.meta.generation,
            "imported_at": c.meta.imported_at,
            "products": c.meta.live,
            "tombstones": c.meta.tombstones,
            "time_zone": store.time_zone().name(),
            "point_of_sale": c.meta.pos.as_ref().map(|p| p.pos_id),
        })),
        "imports": store.import_history(limit)?,
        "secutix_calls": {
            "this_month": store.calls_in_month(now),
            "today": store.calls_on_day(now),
            "catalogService_this_month": store.service_calls_in_month(Service::Catalog.rest_name(), now),
            "availabilityService_this_month": store.service_calls_in_month(Service::Availability.rest_name(), now),
            "bytes_this_month": store.bytes_in_month(now),
            "monthly_call_budget": cfg.availability.monthly_call_budget,
        },
        "availability": {
            "planner": avail.planner_state()?,
            "polls": avail.polls(limit)?,
            "recent_changes": avail.recent_changes(limit)?,
        },
        "targets": targets,
    }))
}

fn product_document(cfg: &Config, store: &Store, id: Id, now: DateTime<Utc>) -> Result<Value, StoreError> {
    let record = match store.catalog()? {
        Some(view) => view.product(id)?,
        None => None,
    };
    let avail = AvailabilityStore::new(store)?;
    let outbox = Outbox::open(store)?;
    let performances: serde_json::Map<String, Value> = avail
        .performances_of(id)?
        .into_iter()
        .map(|(perf, a)| (perf.to_string(), serde_json::to_value(a).unwrap_or(Value::Null)))
        .collect();
    Ok(json!({
        "product_id": id,
        "now": now,
        "record": record,
        "availability": {
            "tracking": avail.tracking(id)?,
            "product_level": avail.product_level(id)?,
            "performances": performances,
        },
        "entry": crate::daemon::documents::entry_document(cfg, &outbox, &id.to_string())?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn config() -> Config {
        Config::load(&Sources {
            file: None,
            env: Some(Default::default()),
            overrides: Some(
                "[secutix]\ninstitution = \"MOSA\"\noperator = \"MOSA_WS\"\npartner = \"p\"\nsecret = \"s\"\n".into(),
            ),
        })
        .expect("config")
        .config
    }

    #[test]
    fn an_empty_store_has_a_summary_and_no_product() {
        let store = Store::temporary(crate::clock::system()).expect("store");
        let cfg = config();
        let now = Utc::now();
        let doc = state_document(
            &cfg,
            &store,
            &StateQuery {
                limit: 5,
                product: None,
            },
            now,
        )
        .expect("summary");
        assert!(doc["catalogue"].is_null());
        assert_eq!(doc["imports"], json!([]));
        assert_eq!(doc["secutix_calls"]["this_month"], 0);
        assert_eq!(doc["secutix_calls"]["monthly_call_budget"], 10_000);
        let one = state_document(
            &cfg,
            &store,
            &StateQuery {
                limit: 5,
                product: Some(42),
            },
            now,
        )
        .expect("product");
        assert!(one["record"].is_null());
        assert!(one["entry"].is_null());
        assert_eq!(one["availability"]["performances"], json!({}));
    }
}
