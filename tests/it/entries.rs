//! The stored entries (bodies in entry logs, a sled index) and the public availability document built from
//! them: entries survive a reopen, a compaction keeps every entry and reclaims the dead bytes, entries of an
//! earlier version's sled tree are moved out of sled, a lost log is rebuilt by the next plan without sending
//! anything, and the public document updated after a plan equals one built from scratch.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::*;
use chrono::{DateTime, Utc};
use secutix_sync::catalog::{Performance, Product};
use secutix_sync::indicator::PerformanceStatus;
use secutix_sync::public::PublicSnapshot;
use secutix_sync::push::{DeletePolicy, Outbox, PlanReport, PlanTarget, Scope, StoredEntry};
use secutix_sync::store::Store;
use serde_json::{Value, json};

/// Availability levels by performance id.
type Levels = Arc<Mutex<BTreeMap<i64, u8>>>;

fn plan(outbox: &Outbox, levels: &Levels) -> PlanReport {
    let levels = levels.clone();
    let status = move |_p: &Product, perf: &Performance, now: DateTime<Utc>| PerformanceStatus {
        level: levels.lock().expect("levels").get(&perf.id).copied(),
        on_sale: !perf.is_past(now),
    };
    outbox
        .plan(
            &[PlanTarget::new("website", DeletePolicy::Unpublish)],
            &common::cms::options(),
            &status,
            &Scope::All,
            false,
            false,
        )
        .expect("plan")
}

fn catalogue(ids: &[i64]) -> Value {
    catalog(vec![season(
        1,
        "S26",
        -30,
        ids.iter()
            .map(|&i| product(i, &format!("Spectacle {i}"), &[(i * 10 + 1, 5), (i * 10 + 2, 6)]))
            .collect(),
    )])
}

fn logs(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("entries"))
        .expect("entries folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn all(outbox: &Outbox) -> Vec<StoredEntry> {
    outbox.entries().expect("entries")
}

#[tokio::test(start_paused = true)]
async fn entries_survive_a_reopen_and_a_compaction_keeps_them_all() {
    let clock = clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let levels: Levels = Arc::default();
    let before = {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("store");
        import_body(&store, &catalogue(&[1, 2, 3]), false);
        let outbox = Outbox::open(&store).expect("outbox");
        assert_eq!(plan(&outbox, &levels).changed_entries, 3);
        // Every change of an indicator writes the entry again: the old bodies stay behind as dead bytes.
        for level in [1, 2, 3, 1, 2] {
            levels.lock().expect("levels").insert(11, level);
            assert_eq!(plan(&outbox, &levels).changed_entries, 1, "level {level}");
        }
        let entries = outbox.entry_store();
        let (total, live) = entries.usage();
        assert!(total > live, "dead bytes after the changes: {total} > {live}");
        let before = all(&outbox);
        assert_eq!(before.len(), 3);
        entries.compact().expect("compaction");
        assert_eq!(entries.usage(), (live, live), "only the live bodies are left");
        assert_eq!(all(&outbox), before, "every entry reads the same after the compaction");
        assert_eq!(
            logs(dir.path()),
            vec!["entries.2.log".to_owned()],
            "the old log is removed"
        );
        // Written after the compaction, to the new log.
        levels.lock().expect("levels").insert(21, 3);
        assert_eq!(plan(&outbox, &levels).changed_entries, 1);
        store.flush().expect("flush");
        all(&outbox)
    };
    let store = Store::open(dir.path(), 16, clock.clone()).expect("store reopens");
    let outbox = Outbox::open(&store).expect("outbox reopens");
    assert_eq!(all(&outbox), before, "the entries as they were");
    let again = plan(&outbox, &levels);
    assert_eq!(again.changed_entries, 0);
    assert_eq!(
        outbox.depth("website").expect("depth"),
        3,
        "the latest version of each is still queued"
    );
    assert!(again.targets["website"].operations.is_empty());
    assert_eq!(
        outbox.entry("secutix-2").expect("read").map(|e| e.content_hash),
        before
            .iter()
            .find(|e| e.entry.external_id == "secutix-2")
            .map(|e| e.content_hash.clone())
    );
}

#[tokio::test(start_paused = true)]
async fn outboxes_opened_twice_on_one_store_share_one_entry_log() {
    let clock = clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let levels: Levels = Arc::default();
    let store = Store::open(dir.path(), 16, clock.clone()).expect("store");
    import_body(&store, &catalogue(&[1, 2, 3]), false);
    // The daemon and a target (pass Culture) each open the outbox of one store.
    let first = Outbox::open(&store).expect("outbox");
    assert_eq!(plan(&first, &levels).changed_entries, 3);
    let second = Outbox::open(&store).expect("second outbox");
    // Writes through either append to the same log at the right place.
    levels.lock().expect("levels").insert(11, 3);
    assert_eq!(plan(&second, &levels).changed_entries, 1);
    levels.lock().expect("levels").insert(21, 2);
    assert_eq!(plan(&first, &levels).changed_entries, 1);
    second.entry_store().compact().expect("compaction");
    levels.lock().expect("levels").insert(31, 1);
    assert_eq!(plan(&first, &levels).changed_entries, 1);
    let (a, b) = (all(&first), all(&second));
    assert_eq!(a.len(), 3);
    assert_eq!(a, b, "both see the same entries");
    assert_eq!(first.entry_store().usage(), second.entry_store().usage());
    assert_eq!(logs(dir.path()), vec!["entries.2.log".to_owned()]);
    drop((first, second));
    store.flush().expect("flush");
    drop(store);
    let store = Store::open(dir.path(), 16, clock).expect("store reopens");
    let outbox = Outbox::open(&store).expect("outbox reopens");
    assert_eq!(all(&outbox), a, "the entries as they were");
    assert_eq!(plan(&outbox, &levels).changed_entries, 0);
}

#[tokio::test(start_paused = true)]
async fn entries_of_an_earlier_version_are_moved_out_of_the_database() {
    let clock = clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let levels: Levels = Arc::default();
    let entries = {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("store");
        import_body(&store, &catalogue(&[1, 2]), false);
        let outbox = Outbox::open(&store).expect("outbox");
        plan(&outbox, &levels);
        let entries = all(&outbox);
        // What an earlier version left: every entry as a JSON value of the sled tree `entries`, no log.
        let db = store.db();
        db.drop_tree("entries.index").expect("drop index");
        let legacy = db.open_tree("entries").expect("legacy tree");
        for e in &entries {
            legacy
                .insert(e.entry.external_id.as_bytes(), serde_json::to_vec(e).expect("json"))
                .expect("insert");
        }
        store.flush().expect("flush");
        entries
    };
    std::fs::remove_dir_all(dir.path().join("entries")).expect("remove the logs");
    let store = Store::open(dir.path(), 16, clock.clone()).expect("store reopens");
    let outbox = Outbox::open(&store).expect("outbox");
    assert_eq!(all(&outbox), entries, "moved as they were");
    assert!(
        !store.db().tree_names().iter().any(|n| n.as_ref() == b"entries"),
        "the old tree is gone"
    );
    assert_eq!(logs(dir.path()), vec!["entries.1.log".to_owned()]);
    assert_eq!(
        plan(&outbox, &levels).changed_entries,
        0,
        "same hashes: nothing changed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_entry_log_is_rebuilt_by_the_next_plan_without_sending_anything_again() {
    let clock = clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let levels: Levels = Arc::default();
    {
        let store = Store::open(dir.path(), 16, clock.clone()).expect("store");
        import_body(&store, &catalogue(&[1, 2, 3]), false);
        let outbox = Outbox::open(&store).expect("outbox");
        plan(&outbox, &levels);
        // The target has every entry.
        let cms = secutix_sync::fakes::testkit::MockHttp::start().await;
        cms.handle("PUT", "/hook/", |_| {
            Some(secutix_sync::fakes::testkit::Reply::status(204))
        });
        let settings = secutix_sync::targets::webhook::WebhookSettings {
            url: format!("{}/hook", cms.uri()),
            mode: secutix_sync::targets::webhook::WebhookMode::Put,
            secret: None,
            secret_file: None,
            headers: BTreeMap::new(),
            allow_insecure_http: false,
        };
        let target = Arc::new(
            secutix_sync::targets::webhook::WebhookTarget::new(
                "website",
                &settings,
                std::time::Duration::from_secs(20),
            )
            .expect("target"),
        );
        let report = secutix_sync::push::Worker::new(&outbox, target, Default::default())
            .expect("worker")
            .drain(secutix_sync::push::DrainOptions::now())
            .await
            .expect("drain");
        assert_eq!(report.delivered, 3);
        store.flush().expect("flush");
    }
    for name in logs(dir.path()) {
        std::fs::remove_file(dir.path().join("entries").join(name)).expect("remove");
    }
    let store = Store::open(dir.path(), 16, clock.clone()).expect("store reopens");
    let outbox = Outbox::open(&store).expect("outbox opens without its log");
    assert!(all(&outbox).is_empty(), "the lost entries are forgotten");
    let report = plan(&outbox, &levels);
    assert_eq!(report.changed_entries, 3, "written again");
    assert!(
        report.targets["website"].operations.is_empty(),
        "the target's acknowledged hashes match: nothing to send"
    );
    assert_eq!(all(&outbox).len(), 3);
}

/// The document as it was built before it moved to a file: every published entry, in external id order.
fn document_from_entries(outbox: &Outbox) -> Value {
    let products: Vec<Value> = all(outbox)
        .into_iter()
        .filter(|e| e.entry.published)
        .map(|e| {
            let perfs: Vec<Value> = e
                .entry
                .performances
                .iter()
                .filter(|p| !p.past)
                .map(|p| {
                    json!({"id": p.id, "start": p.start, "on_sale": p.on_sale, "availability": p.availability,
                           "booking_url": p.booking_url})
                })
                .collect();
            json!({"product_id": e.entry.product_id, "external_id": e.entry.external_id, "title": e.entry.title,
                   "on_sale": e.entry.on_sale, "availability": e.entry.availability,
                   "booking_url": e.entry.booking_url, "performances": perfs})
        })
        .collect();
    json!({"schema_version": secutix_sync::entry::SCHEMA_VERSION, "products": products})
}

#[tokio::test(start_paused = true)]
async fn the_public_document_updated_after_a_plan_equals_one_built_from_scratch() {
    let clock = clock();
    let (store, _dir) = store(&clock);
    let levels: Levels = Arc::default();
    import_body(&store, &catalogue(&[1, 2, 3, 4]), false);
    let outbox = Outbox::open(&store).expect("outbox");
    plan(&outbox, &levels);
    let first = PublicSnapshot::build(&outbox).expect("build");
    assert_eq!(first.product_count(), 4);
    let body: Value = serde_json::from_slice(&first.body().expect("read")).expect("json");
    assert_eq!(body, document_from_entries(&outbox));

    // Product 2 fills up, product 3 leaves the catalogue (a tombstone, not published), product 5 comes.
    levels.lock().expect("levels").insert(21, 3);
    import_body(&store, &catalogue(&[1, 2, 4, 5]), true);
    let report = plan(&outbox, &levels);
    assert_eq!(
        report.changed,
        vec!["secutix-2".to_owned(), "secutix-3".into(), "secutix-5".into()]
    );
    let updated = PublicSnapshot::update(Some(&first), &outbox, &report.changed).expect("update");
    let scratch = PublicSnapshot::build(&outbox).expect("build");
    assert_eq!(updated.body().expect("read"), scratch.body().expect("read"));
    assert_eq!(updated.etag, scratch.etag);
    assert_ne!(updated.etag, first.etag);
    assert_eq!(updated.product_count(), 4);
    let body: Value = serde_json::from_slice(&updated.body().expect("read")).expect("json");
    assert_eq!(body, document_from_entries(&outbox));
    for id in ["secutix-1", "secutix-2", "secutix-4", "secutix-5"] {
        let (bytes, etag) = updated.product(id).expect("published").expect("read");
        assert_eq!(Some(etag.as_str()), scratch.product_etag(id), "{id}");
        let one: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(one["external_id"], id);
    }
    assert!(
        updated.product("secutix-3").is_none(),
        "a tombstone is not in the document"
    );
    assert_eq!(
        updated.product_etag("secutix-1"),
        first.product_etag("secutix-1"),
        "an unchanged product keeps its ETag"
    );
    // The first document is still readable by requests that started before the update.
    assert_eq!(
        serde_json::from_slice::<Value>(&first.body().expect("read")).expect("json")["products"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}
