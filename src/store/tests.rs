use super::*;
use crate::catalog::Translated;

fn product(season_id: Option<Id>, code: &str) -> Product {
    Product {
        id: 42,
        code: Some(code.to_owned()),
        season_id,
        season_code: None,
        family: Some(ProductFamily::SingleEntry),
        family_sub_type: None,
        state: None,
        name: Translated::from_pairs([("fr", "Le \"season_id\":1, piège")]),
        short_name: Translated::default(),
        description: Translated::default(),
        images: Default::default(),
        detail_url: None,
        sale_periods: vec![],
        sub_topic_codes: vec![],
        event: None,
    }
}

fn product_with_id(id: Id) -> Product {
    Product {
        id,
        code: None,
        season_id: None,
        season_code: None,
        family: Some(ProductFamily::SingleEntry),
        family_sub_type: None,
        state: None,
        name: crate::catalog::Translated::from_pairs([("fr", "x")]),
        short_name: Default::default(),
        description: Default::default(),
        images: Default::default(),
        detail_url: None,
        sale_periods: vec![],
        sub_topic_codes: vec![],
        event: None,
    }
}

fn import(store: &Store, ids: &[Id]) -> ImportCounts {
    let mut txn = store.begin_import(&["SINGLE_ENTRY".into()]).expect("begin");
    for &id in ids {
        txn.product(Some(0), product_with_id(id)).expect("stage");
    }
    txn.finish(&FinishOptions::default()).expect("finish")
}

fn started(store: &Store) -> ImportReport {
    let now = store.clock().now();
    ImportReport {
        id: store.next_import_id().expect("id"),
        started_at: now,
        finished_at: now,
        outcome: ImportOutcome::Failed,
        error: None,
        counts: ImportCounts::default(),
        bytes: 0,
        calls: 0,
        generation: store.generation().expect("generation"),
        forced: false,
        flagged: Vec::new(),
    }
}

#[test]
fn an_import_the_process_did_not_finish_is_in_the_history_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = crate::clock::system();
    {
        let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
        let mut first = started(&store);
        store.import_started(&first).expect("mark");
        first.counts = import(&store, &[1, 2, 3]);
        first.outcome = ImportOutcome::Success;
        first.generation = store.generation().expect("generation");
        store.record_import(&first).expect("record");
        // Import 2 stops before the switch.
        store.import_started(&started(&store)).expect("mark");
    }
    {
        let store = Store::open(dir.path(), 1, clock.clone()).expect("reopen");
        let history = store.import_history(10).expect("history");
        assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2, 1]);
        let interrupted = &history[0];
        assert_eq!(interrupted.outcome, ImportOutcome::Failed);
        assert_eq!(interrupted.generation, Some(1), "the catalogue it started from stayed");
        let error = interrupted.error.as_deref().unwrap_or_default();
        assert!(error.contains("import #2 was interrupted"), "{error}");
        assert!(error.contains("resync --catalogue"), "says what to do: {error}");
        assert_eq!(store.last_good_import().expect("good").map(|r| r.id), Some(1));
        // Import 3 stops after the switch, before its report.
        store.import_started(&started(&store)).expect("mark");
        import(&store, &[1, 2, 3, 4]);
    }
    let store = Store::open(dir.path(), 1, clock.clone()).expect("reopen");
    let history = store.import_history(10).expect("history");
    assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2, 1]);
    let switched = &history[0];
    assert_eq!(switched.outcome, ImportOutcome::Success, "{switched:?}");
    assert_eq!(switched.generation, Some(2));
    assert_eq!(switched.counts.products, 4);
    assert_eq!(switched.error, None);
    drop(store);
    let store = Store::open(dir.path(), 1, clock).expect("reopen");
    assert_eq!(store.import_history(10).expect("history").len(), 3, "recorded once");
}

#[test]
fn a_finished_import_leaves_no_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = crate::clock::system();
    {
        let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
        let mut report = started(&store);
        store.import_started(&report).expect("mark");
        report.counts = import(&store, &[1]);
        report.outcome = ImportOutcome::Success;
        report.generation = store.generation().expect("generation");
        store.record_import(&report).expect("record");
    }
    let store = Store::open(dir.path(), 1, clock).expect("reopen");
    let history = store.import_history(10).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, ImportOutcome::Success);
}

#[test]
fn a_lock_left_by_a_handle_this_process_dropped_is_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = crate::clock::system();
    drop(Store::open(dir.path(), 1, clock.clone()).expect("open"));
    // What sled's I/O threads do after the last handle went: keep the database file, and its lock, a
    // little longer. Here a thread holds the lock for 200 ms.
    let file = std::fs::File::open(dir.path().join("db")).expect("db file");
    file.lock().expect("lock");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        locked_tx.send(()).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(file);
    });
    locked_rx.recv().expect("recv");
    let store = Store::open(dir.path(), 1, clock).expect("waits for the lock, then opens");
    holder.join().expect("join");
    assert_eq!(store.generation().expect("generation"), None);
}

#[test]
fn a_lock_of_another_owner_or_of_a_live_handle_is_reported_at_once() {
    let clock = crate::clock::system();
    // Never opened by this process: another process holds it.
    let other = tempfile::tempdir().expect("tempdir");
    let file = std::fs::File::create(other.path().join("db")).expect("db file");
    file.lock().expect("lock");
    assert_eq!(releasing_until(other.path()), None);
    match Store::open(other.path(), 1, clock.clone()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, other.path().display().to_string()),
        r => panic!("expected Locked, got {r:?}"),
    }
    drop(file);

    // Open here: a second open is refused without waiting; once dropped, the wait applies.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
    let copy = store.clone();
    assert_eq!(releasing_until(dir.path()), None);
    assert!(matches!(
        Store::open(dir.path(), 1, clock.clone()),
        Err(StoreError::Locked { .. })
    ));
    drop(store);
    assert_eq!(releasing_until(dir.path()), None, "a clone is still alive");
    drop(copy);
    assert!(releasing_until(dir.path()).is_some_and(|t| t > std::time::Instant::now()));
    Store::open(dir.path(), 1, clock).expect("reopens");
}

/// A store with a catalogue, a call in the ledger and a snapshot of sled (written at the second open),
/// then more writes in sled's log; returns its folder.
fn store_with_history(clock: &SharedClock) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
        import(&store, &[1, 2, 3]);
        store.record_call(clock.now(), "CatalogService", "getCatalogDetailed", 10);
        store.flush().expect("flush");
    }
    let store = Store::open(dir.path(), 1, clock.clone()).expect("reopen");
    import(&store, &[1, 2, 3, 4]);
    store.record_call(clock.now(), "CatalogService", "getCatalogDetailed", 10);
    store.flush().expect("flush");
    dir
}

fn snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap."))
        .collect();
    names.sort();
    names
}

#[test]
fn an_unfinished_snapshot_is_removed_at_open_and_nothing_is_lost() {
    let clock = crate::clock::system();
    // Empty (the disk was full as sled created it) and cut short (it filled up while sled wrote it).
    for (what, bytes) in [("empty", vec![]), ("partial", vec![7u8; 300])] {
        let dir = store_with_history(&clock);
        assert!(
            !snapshots(dir.path()).is_empty(),
            "sled wrote a snapshot at the second open"
        );
        let unfinished = dir.path().join("snap.00000000FFFFFFFF.generating");
        std::fs::write(&unfinished, &bytes).expect("write");

        let store = Store::open(dir.path(), 1, clock.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            store.repairs(),
            [Repair {
                file: unfinished.clone(),
                bytes: bytes.len() as u64
            }],
            "{what}"
        );
        assert!(!unfinished.exists(), "{what}");
        let view = store.catalog().expect("catalog").expect("a catalogue");
        assert_eq!(view.product_ids().collect::<Vec<_>>(), [1, 2, 3, 4], "{what}");
        drop(view);
        assert_eq!(store.calls_in_month(clock.now()), 2, "{what}: the call ledger");
        import(&store, &[1, 2, 3, 4, 5]);
        drop(store);
        let again = Store::open(dir.path(), 1, clock.clone()).expect("opens again");
        assert!(again.repairs().is_empty(), "{what}: nothing left to repair");
    }
}

#[test]
fn a_store_that_opens_is_not_touched() {
    let clock = crate::clock::system();
    let dir = store_with_history(&clock);
    // A finished snapshot sled has not cleaned up yet: sled reads it, nothing is repaired.
    let store = Store::open(dir.path(), 1, clock.clone()).expect("open");
    assert!(store.repairs().is_empty());
}

#[test]
fn other_corruption_is_reported_with_what_to_do_and_nothing_is_removed() {
    let clock = crate::clock::system();
    let dir = store_with_history(&clock);
    let damaged = dir.path().join("snap.00000000FFFFFFFF");
    std::fs::write(&damaged, [1u8; 40]).expect("write");
    let before = snapshots(dir.path());
    let e = Store::open(dir.path(), 1, clock).expect_err("damaged");
    let text = e.to_string();
    assert!(text.contains("sled read corrupted data"), "{text}");
    assert!(text.contains("Recovering a lost store"), "{text}");
    assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    assert_eq!(snapshots(dir.path()), before, "nothing removed");
}

#[test]
fn unfinished_snapshots_of_a_store_in_use_are_left_alone() {
    let clock = crate::clock::system();
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = Store::open(dir.path(), 1, clock).expect("open");
    // As if the process holding the store were writing its snapshot right now.
    let writing = dir.path().join("snap.00000000FFFFFFFF.generating");
    std::fs::write(&writing, b"").expect("write");
    let p = dir.path().display().to_string();
    assert!(matches!(
        remove_unfinished_snapshots(dir.path(), &p),
        Err(StoreError::Locked { .. })
    ));
    assert!(writing.exists());
}

#[test]
fn a_full_disk_is_said_in_words_with_what_to_do() {
    // As sled hands it over: its own I/O error holding the original's debug text.
    let full = sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        format!("{:?}", std::io::Error::from_raw_os_error(28)),
    ));
    let text = StoreError::Sled {
        path: "/var/lib/secutix-sync".into(),
        error: full,
    }
    .to_string();
    assert!(text.contains("the disk is full"), "{text}");
    assert!(text.contains("systemctl restart secutix-sync"), "{text}");
    assert!(!text.contains("Os {"), "{text}");
    let denied = sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{:?}", std::io::Error::from_raw_os_error(13)),
    ));
    let text = sled_reason(&denied);
    assert!(text.contains("permission denied") && !text.contains("Os {"), "{text}");
    let records = StoreError::Io {
        path: "/var/lib/secutix-sync".into(),
        what: "writing records/cat.4.staging".into(),
        source: std::io::Error::from_raw_os_error(28),
    }
    .to_string();
    assert!(records.contains("The disk is full: free space"), "{records}");
}

#[test]
fn applying_a_season_to_bytes_equals_decoding_setting_and_encoding() {
    let season = Season {
        id: Some(77),
        code: Some("S\"26".into()),
        state: None,
        start: None,
        end: None,
        name: Translated::default(),
        audience_sub_categories: vec![],
        price_levels: vec![],
    };
    for (own, code) in [(None, "P1"), (Some(5), ",\"season_id\":9,\"season_code\":null,")] {
        let p = product(own, code);
        let bytes = serde_json::to_vec(&p).expect("encode");
        let mut expected = p.clone();
        expected.season_id = own.or(season.id);
        expected.season_code = season.code.clone();
        assert_eq!(
            apply_season(&bytes, &season).expect("the shape serde writes"),
            serde_json::to_vec(&expected).expect("encode"),
            "own season id {own:?}"
        );
    }
    let mut with_code = product(None, "P1");
    with_code.season_code = Some("X".into());
    let bytes = serde_json::to_vec(&with_code).expect("encode");
    assert_eq!(apply_season(&bytes, &season), None, "another shape: the caller decodes");
}

#[test]
fn a_spliced_record_equals_the_encoded_record() {
    let now = Utc::now();
    let p = product(Some(3), "P2");
    let record = ProductRecord {
        product: p.clone(),
        feed_hash: "ab".repeat(32),
        first_seen: now,
        changed_at: now,
        removed_at: None,
    };
    let tail = RecordTail {
        feed_hash: &record.feed_hash,
        first_seen: now,
        changed_at: now,
        removed_at: None,
    };
    let spliced = splice_record(&serde_json::to_vec(&p).expect("encode"), &tail).expect("splice");
    assert_eq!(spliced, serde_json::to_vec(&record).expect("encode"));
}

#[test]
fn index_and_staging_entries_round_trip() {
    let e = IndexEntry {
        tombstone: true,
        wire_season_id: true,
        offset: 1 << 40,
        len: 77,
        last_start_ms: Some(-5),
        performances: 25,
        season_fp: 9,
        feed_hash: [3; 32],
        wire_hash: [4; 32],
        code: Some("TH00042".into()),
    };
    assert_eq!(IndexEntry::decode(&e.encode()), Some(e.clone()));
    let none = IndexEntry {
        last_start_ms: None,
        code: None,
        ..e
    };
    assert_eq!(IndexEntry::decode(&none.encode()), Some(none));
    let s = Staged::Bytes {
        offset: 12,
        len: 34,
        wire: [1; 32],
        performances: 3,
        last_start_ms: None,
        wire_season_id: false,
        code: Some("C".into()),
    };
    assert!(
        matches!(Staged::decode(&s.encode()), Some(Staged::Bytes { offset: 12, len: 34, performances: 3, code: Some(c), .. }) if c == "C")
    );
}
