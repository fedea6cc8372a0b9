//! The `wordpress` target.
//!
//! **Against a real WordPress** (the `real_…` tests): the one `.ci/wordpress.sh start DIR` builds from Debian
//! packages, whose address and Application Password `.ci/run` exports as `SECUTIX_SYNC_TEST_WP_URL`,
//! `SECUTIX_SYNC_TEST_WP_USER` and `SECUTIX_SYNC_TEST_WP_APP_PASSWORD` (and the site's name,
//! `SECUTIX_SYNC_TEST_WP_SITE_NAME`, checked before the first call). Without them these tests print a
//! `SKIPPED: …` line and return. A catalogue goes the whole way: a mock SecuTix, the import, the plan, the
//! worker, the target, WordPress; then the tests read the posts back through the REST API. Each test has its
//! own product ids and a word in its titles, and removes its own posts first: the tests run in parallel on
//! one site and can be run again.
//!
//! **Against a scripted WordPress** (wiremock): answers a real site gives only by bad luck (a create racing
//! another, a refused item inside a batch, a busy site, an outdated plugin).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::cms::*;
use crate::common::*;
use secutix_sync::clock::SharedClock;
use secutix_sync::push::DeletePolicy;
use secutix_sync::targets::Target;
use secutix_sync::targets::wordpress::{WordPressSettings, WordPressTarget};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

// ---------------------------------------------------------------------------------------------------- helpers

// ---------------------------------------------------------------------------------------------------- real site

/// The real WordPress of `.ci/wordpress.sh`, seen through its REST API.
struct Wp {
    url: String,
    user: String,
    password: String,
    http: reqwest::Client,
    /// `SECUTIX_SYNC_TEST_WP_SITE_NAME`: the site `.ci/wordpress.sh start` made, in its database.
    site_name: Option<String>,
    /// Set once the site answered under that name, before the first call.
    checked: tokio::sync::OnceCell<()>,
}

impl Wp {
    /// The site from the environment, or `None` after printing why the test is skipped.
    fn from_env(test: &str) -> Option<Wp> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match (
            var("SECUTIX_SYNC_TEST_WP_URL"),
            var("SECUTIX_SYNC_TEST_WP_USER"),
            var("SECUTIX_SYNC_TEST_WP_APP_PASSWORD"),
        ) {
            (Some(url), Some(user), Some(password)) => Some(Wp {
                url: url.trim_end_matches('/').to_owned(),
                user,
                password,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("client"),
                site_name: var("SECUTIX_SYNC_TEST_WP_SITE_NAME"),
                checked: tokio::sync::OnceCell::new(),
            }),
            _ => {
                // Straight to stderr (not the captured test output), in one write, so `.ci/run` sees the line.
                let line = format!(
                    "SKIPPED: wordpress::{test}: no WordPress to test against (SECUTIX_SYNC_TEST_WP_URL, \
                     SECUTIX_SYNC_TEST_WP_USER and SECUTIX_SYNC_TEST_WP_APP_PASSWORD are not set); run \
                     `.ci/wordpress.sh start DIR` and source DIR/env, as .ci/run does\n"
                );
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
                None
            }
        }
    }

    fn settings(&self, extra: &str) -> WordPressSettings {
        toml::from_str(&format!(
            "url = {:?}\nuser = {:?}\napplication_password = {:?}\nallow_insecure_http = true\n{extra}",
            self.url, self.user, self.password
        ))
        .expect("settings")
    }

    fn target(&self, name: &str, extra: &str) -> Arc<dyn Target> {
        Arc::new(WordPressTarget::new(name, &self.settings(extra), Duration::from_secs(60)).expect("target"))
    }

    /// The site answering is the one `.ci/wordpress.sh start` made: a WordPress answering for another
    /// database (another instance took over its address or configuration) refuses these credentials with
    /// a 401 that would point at them instead.
    async fn check_site(&self) {
        let Some(want) = &self.site_name else { return };
        let index: Value = match self.http.get(format!("{}/wp-json/", self.url)).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => panic!(
                "WordPress at {} does not answer ({e}); SECUTIX_SYNC_TEST_WP_URL is set, so a site is expected: \
                 start it with .ci/wordpress.sh start",
                self.url
            ),
        };
        let got = index["name"].as_str().unwrap_or("(not a WordPress REST index)");
        assert!(
            got == want,
            "the WordPress at {} answers for another database: its site is {got:?}, not {want:?} that \
             `.ci/wordpress.sh start` made (SECUTIX_SYNC_TEST_WP_SITE_NAME). Another WordPress on this machine \
             took over its address or its configuration, and would refuse these credentials (401). Run \
             `.ci/wordpress.sh start DIR` again and source DIR/env",
            self.url
        );
    }

    async fn call(&self, method: reqwest::Method, route: &str, body: Option<Value>) -> (u16, Value) {
        self.checked.get_or_init(|| self.check_site()).await;
        let mut req = self
            .http
            .request(method.clone(), format!("{}/wp-json{route}", self.url))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!(
                "{method} {route}: WordPress at {} does not answer ({e}); SECUTIX_SYNC_TEST_WP_URL is set, so a \
                 site is expected: start it with .ci/wordpress.sh start",
                self.url
            )
        });
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn ok(&self, method: reqwest::Method, route: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method.clone(), route, body).await;
        assert!((200..300).contains(&status), "{method} {route}: HTTP {status}: {v}");
        v
    }

    /// Every post (any status, trash included) whose title or content holds `word`.
    async fn posts(&self, word: &str) -> Vec<Value> {
        let v = self
            .ok(
                reqwest::Method::GET,
                &format!(
                    "/wp/v2/event?search={word}&status=publish,future,draft,pending,private,trash&per_page=100\
                     &orderby=id&order=asc&context=edit"
                ),
                None,
            )
            .await;
        v.as_array().expect("a list of posts").clone()
    }

    async fn post(&self, id: u64) -> Value {
        self.ok(reqwest::Method::GET, &format!("/wp/v2/event/{id}?context=edit"), None)
            .await
    }

    async fn lookup(&self, ids: &[String]) -> HashMap<String, Value> {
        let v = self
            .ok(
                reqwest::Method::GET,
                &format!("/secutix-sync/v1/lookup?external_ids={}", ids.join(",")),
                None,
            )
            .await;
        v.as_array()
            .expect("lookup list")
            .iter()
            .map(|f| (f["external_id"].as_str().expect("id").to_owned(), f.clone()))
            .collect()
    }

    /// Deletes for good every post of an earlier run: by word in the title and by external id.
    async fn clean(&self, word: &str, ids: &[String]) {
        let mut doomed: Vec<u64> = self.posts(word).await.iter().filter_map(|p| p["id"].as_u64()).collect();
        for f in self.lookup(ids).await.values() {
            doomed.extend(f["id"].as_u64());
            doomed.extend(
                f["duplicates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64),
            );
        }
        doomed.sort_unstable();
        doomed.dedup();
        for id in doomed {
            self.call(reqwest::Method::DELETE, &format!("/wp/v2/event/{id}?force=true"), None)
                .await;
        }
    }

    /// The posts of `word`, by external id; fails if one external id has two posts.
    async fn by_external_id(&self, word: &str) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for p in self.posts(word).await {
            let xid = p["meta"]["secutix_external_id"]
                .as_str()
                .expect("external id")
                .to_owned();
            if let Some(other) = out.insert(xid.clone(), p.clone()) {
                panic!("two posts for {xid}: {} and {}", other["id"], p["id"]);
            }
        }
        out
    }
}

fn xids(ids: &[i64]) -> Vec<String> {
    ids.iter().map(|i| format!("secutix-{i}")).collect()
}

fn meta<'a>(post: &'a Value, key: &str) -> &'a Value {
    &post["meta"][key]
}

#[tokio::test]
async fn real_a_catalogue_reaches_wordpress_once_with_its_meta_and_follows_changes() {
    let Some(wp) = Wp::from_env("real_a_catalogue_reaches_wordpress_once_with_its_meta_and_follows_changes") else {
        return;
    };
    let word = "zqwpflow";
    let ids = [
        7_100_000_000_011,
        7_100_000_000_012,
        7_100_000_000_013,
        7_100_000_000_014,
    ];
    wp.clean(word, &xids(&ids)).await;
    let products = |n: usize| {
        catalog(vec![season(
            1,
            "S26",
            -30,
            ids[..n]
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let perfs: Vec<(i64, i64)> = (0..=(i as i64 % 2)).map(|k| (id * 10 + k, 10 + k)).collect();
                    product(*id, &format!("Spectacle {i} {word}"), &perfs)
                })
                .collect(),
        )])
    };
    let secutix = SecuTix::start(products(4)).await;
    let daemon = Daemon::new(
        &secutix,
        wp.target("wp", ""),
        clock_at(chrono::Duration::zero()),
        DeletePolicy::Unpublish,
    );

    // First sync: four creates in one batch.
    let (plan, _) = daemon.sync().await;
    assert_eq!(plan.create, 4, "{plan:?}");
    let posts = wp.by_external_id(word).await;
    assert_eq!(
        posts.keys().cloned().collect::<Vec<_>>(),
        xids(&ids),
        "every entry once"
    );
    let lookups = wp.lookup(&xids(&ids)).await;
    for (xid, post) in &posts {
        assert_eq!(lookups[xid]["id"], post["id"]);
        assert_eq!(lookups[xid]["duplicates"], json!([]));
        let ack = daemon.outbox.acked("wp", xid).expect("ack").expect("acknowledged");
        assert_eq!(
            ack.remote_id,
            post["id"].as_u64().map(|i| i.to_string()),
            "the store keeps the post id"
        );
        assert_eq!(post["status"], "publish");
        assert_eq!(
            meta(post, "secutix_content_hash").as_str(),
            Some(ack.content_hash.as_str())
        );
    }
    let first = &posts["secutix-7100000000011"];
    assert_eq!(first["title"]["raw"], format!("Spectacle 0 {word}"));
    assert_eq!(
        first["content"]["raw"],
        format!("<p>Spectacle 0 {word}</p>"),
        "initial body"
    );
    assert_eq!(meta(first, "secutix_product_id"), "7100000000011");
    assert_eq!(meta(first, "secutix_product_code"), "P7100000000011");
    assert_eq!(meta(first, "secutix_schema_version"), 1);
    assert_eq!(meta(first, "secutix_state"), "RUNNING");
    assert_eq!(meta(first, "secutix_genre"), "Théâtre");
    assert_eq!(meta(first, "secutix_season"), "S26");
    assert_eq!(meta(first, "secutix_on_sale"), true);
    assert_eq!(
        meta(first, "secutix_availability"),
        "unknown",
        "on sale, not polled yet"
    );
    assert_eq!(meta(first, "secutix_availability_code"), 0);
    assert_eq!(meta(first, "secutix_price_min").as_f64(), Some(35.0));
    assert_eq!(meta(first, "secutix_price_max").as_f64(), Some(35.0));
    assert_eq!(meta(first, "secutix_currency"), "EUR");
    assert_eq!(
        meta(first, "secutix_booking_url"),
        "https://mosa.shop.secutix.com/api/1/redirect/product?id=7100000000011&lang=fr"
    );
    let urls: Value = serde_json::from_str(meta(first, "secutix_booking_urls").as_str().expect("json")).expect("json");
    assert_eq!(
        urls["en"],
        "https://mosa.shop.secutix.com/api/1/redirect/product?id=7100000000011&lang=en"
    );
    assert_eq!(meta(first, "secutix_next_performance"), "2026-03-12T11:00:00+01:00");
    assert_eq!(meta(first, "secutix_first_performance"), "2026-03-12T11:00:00+01:00");
    let second = &posts["secutix-7100000000012"];
    assert_eq!(meta(second, "secutix_last_performance"), "2026-03-13T11:00:00+01:00");
    let perfs: Value =
        serde_json::from_str(meta(second, "secutix_performances").as_str().expect("json")).expect("json");
    assert_eq!(perfs.as_array().map(Vec::len), Some(2));
    let entry: Value = serde_json::from_str(meta(second, "secutix_entry").as_str().expect("json")).expect("json");
    assert_eq!(entry["external_id"], "secutix-7100000000012");
    assert_eq!(entry["price_range"]["min"], json!({"amount": "35.00", "minor": 3500}));
    assert!(
        meta(second, "secutix_synced_at")
            .as_str()
            .is_some_and(|s| s.starts_with("2026-03-02T"))
    );

    // Unchanged catalogue: nothing sent.
    let (plan, report) = daemon.sync().await;
    assert_eq!((plan.operations.len(), report.delivered), (0, 0));

    // One performance of the third product sells out: only that post changes.
    let before = wp.by_external_id(word).await;
    daemon.set_level(ids[2] * 10, 3);
    let (plan, report) = daemon.sync().await;
    assert_eq!(plan.update, 1, "{plan:?}");
    assert_eq!(report.delivered, 1);
    let after = wp.by_external_id(word).await;
    let changed = &after["secutix-7100000000013"];
    assert_eq!(meta(changed, "secutix_availability"), "sold_out");
    assert_eq!(meta(changed, "secutix_availability_code"), 3);
    assert_eq!(meta(changed, "secutix_booking_url"), "", "no Book link when full");
    assert_ne!(
        meta(changed, "secutix_content_hash"),
        meta(&before["secutix-7100000000013"], "secutix_content_hash")
    );
    for xid in [
        "secutix-7100000000011",
        "secutix-7100000000012",
        "secutix-7100000000014",
    ] {
        assert_eq!(
            after[xid]["modified_gmt"], before[xid]["modified_gmt"],
            "{xid} untouched"
        );
        assert_eq!(
            meta(&after[xid], "secutix_content_hash"),
            meta(&before[xid], "secutix_content_hash")
        );
    }

    // The fourth product leaves SecuTix: its post becomes a draft, the others stay published.
    secutix.set(products(3));
    let (plan, _) = daemon.sync().await;
    assert_eq!((plan.unpublish, plan.operations.len()), (1, 1), "{plan:?}");
    let after = wp.by_external_id(word).await;
    assert_eq!(after.len(), 4, "unpublished, not deleted");
    assert_eq!(after["secutix-7100000000014"]["status"], "draft");
    assert_eq!(
        meta(&after["secutix-7100000000014"], "secutix_availability"),
        "not_on_sale"
    );
    for xid in [
        "secutix-7100000000011",
        "secutix-7100000000012",
        "secutix-7100000000013",
    ] {
        assert_eq!(after[xid]["status"], "publish");
    }
}

#[tokio::test]
async fn real_editor_work_survives_syncs_and_a_lost_store_creates_no_duplicate() {
    let Some(wp) = Wp::from_env("real_editor_work_survives_syncs_and_a_lost_store_creates_no_duplicate") else {
        return;
    };
    let word = "zqwpeditor";
    let ids = [7_100_000_000_021, 7_100_000_000_022, 7_100_000_000_023];
    wp.clean(word, &xids(&ids)).await;
    let products = |price_of_first: i64, price_of_third: i64| {
        let mut c = catalog(vec![season(
            1,
            "S26",
            -30,
            ids.iter()
                .map(|id| product(*id, &format!("Spectacle {id} {word}"), &[(id * 10, 12)]))
                .collect(),
        )]);
        let ps = &mut c["catalogData"]["seasons"][0]["products"];
        ps[0]["event"]["performances"][0]["prices"][0]["amount"] = json!(price_of_first);
        ps[2]["event"]["performances"][0]["prices"][0]["amount"] = json!(price_of_third);
        c
    };
    let secutix = SecuTix::start(products(35000, 35000)).await;
    let daemon = Daemon::new(
        &secutix,
        wp.target("wp", ""),
        clock_at(chrono::Duration::zero()),
        DeletePolicy::Unpublish,
    );
    daemon.sync().await;
    let posts = wp.by_external_id(word).await;
    let post_ids: BTreeMap<String, Value> = posts.iter().map(|(k, p)| (k.clone(), p["id"].clone())).collect();
    let id1 = posts["secutix-7100000000021"]["id"].as_u64().expect("id");

    // An editor works on the first post: body, excerpt, featured image, own meta, a term, and the title.
    let png: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1,
        8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xff,
        0xff, 0x3f, 0, 0x05, 0xfe, 0x02, 0xfe, 0xa7, 0x35, 0x81, 0x84, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42,
        0x60, 0x82,
    ];
    let media: Value = wp
        .http
        .post(format!("{}/wp-json/wp/v2/media", wp.url))
        .basic_auth(&wp.user, Some(&wp.password))
        .header("Content-Type", "image/png")
        .header("Content-Disposition", format!("attachment; filename={word}.png"))
        .body(png.to_vec())
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("media");
    let media_id = media["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("media upload failed: {media}"));
    let (status, term) = wp
        .call(
            reqwest::Method::POST,
            "/wp/v2/venue_tag",
            Some(json!({"name": format!("Famille {word}")})),
        )
        .await;
    let term_id = match status {
        201 => term["id"].as_u64().expect("term id"),
        // An earlier run created it.
        400 => term["data"]["term_id"].as_u64().expect("existing term id"),
        _ => panic!(
            "POST /wp/v2/venue_tag: HTTP {status}: {term}; the test site lacks .ci/wordpress-editor-fields.php \
             (start it with .ci/wordpress.sh start)"
        ),
    };
    let editor_body = format!("<p>Texte de l'équipe, long et soigné. {word}</p>");
    wp.ok(
        reqwest::Method::POST,
        &format!("/wp/v2/event/{id1}"),
        Some(json!({
            "title": "Titre retouché à la main",
            "content": editor_body,
            "excerpt": "Un résumé d'éditeur",
            "featured_media": media_id,
            "venue_tag": [term_id],
            "meta": {"venue_editor_note": "Prévoir des mouchoirs"},
        })),
    )
    .await;
    let edited = wp.post(id1).await;
    assert_eq!(
        meta(&edited, "venue_editor_note"),
        "Prévoir des mouchoirs",
        "the test site lacks .ci/wordpress-editor-fields.php (start it with .ci/wordpress.sh start)"
    );

    // SecuTix changes the first product's price: one update, and only owned fields change.
    secutix.set(products(28000, 35000));
    let (plan, _) = daemon.sync().await;
    assert_eq!(plan.update, 1, "{plan:?}");
    let after = wp.post(id1).await;
    assert_eq!(meta(&after, "secutix_price_min").as_f64(), Some(28.0), "owned: updated");
    assert_eq!(
        after["title"]["raw"],
        format!("Spectacle 7100000000021 {word}"),
        "owned: the title is SecuTix's"
    );
    assert_eq!(after["content"]["raw"], editor_body, "the body is the editor's");
    assert_eq!(after["excerpt"]["raw"], "Un résumé d'éditeur");
    assert_eq!(after["featured_media"], media_id);
    assert_eq!(after["venue_tag"], json!([term_id]));
    assert_eq!(meta(&after, "venue_editor_note"), "Prévoir des mouchoirs");

    // The daemon's store is lost. A new one, a day later, while SecuTix changed the third product's price.
    drop(daemon);
    secutix.set(products(28000, 42000));
    let fresh = Daemon::new(
        &secutix,
        wp.target("wp", ""),
        clock_at(chrono::Duration::days(1)),
        DeletePolicy::Unpublish,
    );
    let (plan, report) = fresh.sync().await;
    assert_eq!(plan.create, 3, "the new store knows nothing: {plan:?}");
    assert_eq!(report.delivered, 3);
    let posts = wp.by_external_id(word).await;
    let again: BTreeMap<String, Value> = posts.iter().map(|(k, p)| (k.clone(), p["id"].clone())).collect();
    assert_eq!(again, post_ids, "the same three posts, no duplicate");
    for (xid, f) in wp.lookup(&xids(&ids)).await {
        assert_eq!(f["duplicates"], json!([]), "{xid}");
        let ack = fresh.outbox.acked("wp", &xid).expect("ack").expect("acknowledged");
        assert_eq!(
            ack.remote_id,
            f["id"].as_u64().map(|i| i.to_string()),
            "post id recovered"
        );
    }
    let third = &posts["secutix-7100000000023"];
    assert_eq!(
        meta(third, "secutix_price_max").as_f64(),
        Some(42.0),
        "updated in place"
    );
    assert!(
        meta(third, "secutix_synced_at")
            .as_str()
            .is_some_and(|s| s.starts_with("2026-03-03T")),
        "written by the new store"
    );
    for xid in ["secutix-7100000000021", "secutix-7100000000022"] {
        assert!(
            meta(&posts[xid], "secutix_synced_at")
                .as_str()
                .is_some_and(|s| s.starts_with("2026-03-02T")),
            "{xid} already had this version: not written again"
        );
    }
    let first = wp.post(id1).await;
    assert_eq!(first["content"]["raw"], editor_body);
    assert_eq!(first["featured_media"], media_id);
    assert_eq!(meta(&first, "venue_editor_note"), "Prévoir des mouchoirs");

    // And a sync after that sends nothing.
    let (plan, _) = fresh.sync().await;
    assert_eq!(plan.operations.len(), 0, "{plan:?}");
}

#[tokio::test]
async fn real_single_requests_trash_restore_and_recreate_a_post_deleted_by_hand() {
    let Some(wp) = Wp::from_env("real_single_requests_trash_restore_and_recreate_a_post_deleted_by_hand") else {
        return;
    };
    let word = "zqwpsingle";
    let ids = [7_100_000_000_031, 7_100_000_000_032];
    wp.clean(word, &xids(&ids)).await;
    let products = |which: &[i64], amount: i64| {
        let mut c = catalog(vec![season(
            1,
            "S26",
            -30,
            which
                .iter()
                .map(|id| product(*id, &format!("Spectacle {id} {word}"), &[(id * 10, 12)]))
                .collect(),
        )]);
        for p in c["catalogData"]["seasons"][0]["products"]
            .as_array_mut()
            .expect("products")
        {
            p["event"]["performances"][0]["prices"][0]["amount"] = json!(amount);
        }
        c
    };
    let secutix = SecuTix::start(products(&ids, 35000)).await;
    // batch_size = 1: every operation is its own request; status is the editors' after creation.
    let daemon = Daemon::new(
        &secutix,
        wp.target(
            "wp",
            "batch_size = 1\nowned_fields = [\"title\", \"secutix\", \"state\", \"dates\", \"prices\", \"availability\", \"links\"]\ninitial_fields = [\"body\", \"status\"]",
        ),
        clock_at(chrono::Duration::zero()),
        DeletePolicy::Delete,
    );
    daemon.sync().await;
    let posts = wp.by_external_id(word).await;
    assert_eq!(posts.len(), 2);
    let (id1, id2) = (
        posts["secutix-7100000000031"]["id"].as_u64().expect("id"),
        posts["secutix-7100000000032"]["id"].as_u64().expect("id"),
    );
    assert_eq!(
        posts["secutix-7100000000031"]["status"], "publish",
        "status is initial: set at creation"
    );

    // An editor takes the first post offline; status is not owned, so a sync leaves it so.
    wp.ok(
        reqwest::Method::POST,
        &format!("/wp/v2/event/{id1}"),
        Some(json!({"status": "pending"})),
    )
    .await;
    secutix.set(products(&ids, 30000));
    daemon.sync().await;
    let p1 = wp.post(id1).await;
    assert_eq!(p1["status"], "pending", "the editors' decision stays");
    assert_eq!(meta(&p1, "secutix_price_min").as_f64(), Some(30.0));

    // Someone deletes the second post for good; the next change re-creates it (the old id answers 404).
    wp.ok(reqwest::Method::DELETE, &format!("/wp/v2/event/{id2}?force=true"), None)
        .await;
    secutix.set(products(&ids, 31000));
    daemon.sync().await;
    let posts = wp.by_external_id(word).await;
    let new2 = posts["secutix-7100000000032"]["id"].as_u64().expect("id");
    assert_ne!(new2, id2, "re-created");
    assert_eq!(
        meta(&posts["secutix-7100000000032"], "secutix_price_min").as_f64(),
        Some(31.0)
    );
    assert_eq!(
        daemon
            .outbox
            .acked("wp", "secutix-7100000000032")
            .expect("ack")
            .and_then(|a| a.remote_id),
        Some(new2.to_string())
    );

    // The first product leaves SecuTix with delete_policy = "delete": its post goes to the trash...
    secutix.set(products(&ids[1..], 31000));
    let (plan, _) = daemon.sync().await;
    assert_eq!(plan.delete, 1, "{plan:?}");
    assert_eq!(wp.post(id1).await["status"], "trash");
    // ...and when it comes back, the trashed post is updated (not duplicated); status is initial, so it
    // stays where the editors and the trash left it: they restore it by hand.
    secutix.set(products(&ids, 31000));
    let (plan, _) = daemon.sync().await;
    assert_eq!(plan.create + plan.update, 1, "{plan:?}");
    let posts = wp.by_external_id(word).await;
    assert_eq!(posts.len(), 2, "no duplicate of the trashed post");
    assert_eq!(posts["secutix-7100000000031"]["id"], id1);
    assert_eq!(
        meta(&posts["secutix-7100000000031"], "secutix_price_min").as_f64(),
        Some(31.0)
    );
}

/// Issue 13, item 9: a product in preparation (`PREPARING`, not announced yet) never becomes a published post;
/// once announced it is published; back in preparation its post becomes a draft, even with
/// `delete_policy = "delete"` (SecuTix still lists it).
#[tokio::test]
async fn real_a_product_not_announced_yet_is_never_a_published_post() {
    let Some(wp) = Wp::from_env("real_a_product_not_announced_yet_is_never_a_published_post") else {
        return;
    };
    let word = "zqwpprepared";
    let ids = [7_100_000_000_041, 7_100_000_000_042];
    wp.clean(word, &xids(&ids)).await;
    let products = |second_state: &str| {
        let mut second = product(ids[1], &format!("En préparation {word}"), &[(ids[1] * 10, 10)]);
        second["state"] = second_state.into();
        catalog(vec![season(
            1,
            "S26",
            -30,
            vec![
                product(ids[0], &format!("À l'affiche {word}"), &[(ids[0] * 10, 10)]),
                second,
            ],
        )])
    };
    let secutix = SecuTix::start(products("PREPARING")).await;
    let daemon = Daemon::new(
        &secutix,
        wp.target("wp", ""),
        clock_at(chrono::Duration::zero()),
        DeletePolicy::Delete,
    );
    let status = |posts: &BTreeMap<String, Value>| -> BTreeMap<String, String> {
        posts
            .iter()
            .map(|(xid, p)| (xid.clone(), p["status"].as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let (on_sale, prepared) = (format!("secutix-{}", ids[0]), format!("secutix-{}", ids[1]));

    let (plan, _) = daemon.sync().await;
    assert_eq!(plan.create, 1, "{plan:?}");
    assert_eq!(
        status(&wp.by_external_id(word).await),
        BTreeMap::from([(on_sale.clone(), "publish".to_owned())]),
        "no post for the product in preparation"
    );

    secutix.set(products("RUNNING"));
    daemon.sync().await;
    assert_eq!(
        status(&wp.by_external_id(word).await),
        BTreeMap::from([
            (on_sale.clone(), "publish".to_owned()),
            (prepared.clone(), "publish".to_owned())
        ]),
        "announced: published"
    );

    secutix.set(products("PREPARING"));
    let (plan, _) = daemon.sync().await;
    assert_eq!((plan.unpublish, plan.delete), (1, 0), "{plan:?}");
    assert_eq!(
        status(&wp.by_external_id(word).await),
        BTreeMap::from([(on_sale, "publish".to_owned()), (prepared, "draft".to_owned())]),
        "back in preparation: a draft, not in the trash"
    );
    wp.clean(word, &xids(&ids)).await;
}

// ---------------------------------------------------------------------------------------------------- scripted site

/// A scripted WordPress: the plugin's health and lookup, posts, the batch route, and injected trouble.
#[derive(Default)]
struct FakeState {
    posts: BTreeMap<u64, Value>,
    next_id: u64,
    /// External ids the lookup does not see (a post created by someone else just after the lookup).
    hidden: Vec<String>,
    /// External id → WordPress error answered to its create.
    refuse: BTreeMap<String, (u16, Value)>,
    /// Batch calls still to answer 503 with `Retry-After: 120`.
    busy_batches: u32,
    plugin_version: String,
    /// (method, path) of every request.
    log: Vec<(String, String)>,
}

#[derive(Clone)]
struct FakeWp(Arc<Mutex<FakeState>>);

fn external_id_of(body: &Value) -> Option<String> {
    body.pointer("/meta/secutix_external_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl FakeWp {
    fn new() -> Self {
        let state = FakeState {
            next_id: 100,
            plugin_version: "1.1.0".into(),
            ..FakeState::default()
        };
        Self(Arc::new(Mutex::new(state)))
    }

    fn health(&self, s: &FakeState) -> Value {
        let keys: serde_json::Map<String, Value> = secutix_sync::targets::fields::FIELDS
            .iter()
            .map(|f| (format!("secutix_{}", f.0), json!("string")))
            .collect();
        json!({"plugin": "secutix-sync", "version": s.plugin_version, "wordpress": "6.1.9", "post_type": "event",
               "post_type_registered": true, "rest_namespace": "wp/v2", "rest_base": "event",
               "supports_custom_fields": true, "meta_keys": keys, "max_batch_size": 25})
    }

    /// One REST call (also one item of a batch): (status, body).
    fn route(&self, s: &mut FakeState, method: &str, route: &str, body: &Value) -> (u16, Value) {
        let holder = |s: &FakeState, xid: &str| {
            s.posts
                .iter()
                .find(|(_, p)| external_id_of(p).as_deref() == Some(xid))
                .map(|(id, _)| *id)
        };
        match (method, route) {
            ("POST", "/wp/v2/event") => {
                let xid = external_id_of(body).unwrap_or_default();
                if let Some(answer) = s.refuse.get(&xid) {
                    return answer.clone();
                }
                if let Some(id) = holder(s, &xid) {
                    return (
                        409,
                        json!({"code": "secutix_sync_exists", "message": format!("Post {id} already holds {xid}"),
                               "data": {"status": 409, "id": id, "post_status": "publish"}}),
                    );
                }
                s.next_id += 1;
                let id = s.next_id;
                let mut post = body.clone();
                post["id"] = json!(id);
                s.posts.insert(id, post.clone());
                (201, post)
            }
            ("POST", r) if r.starts_with("/wp/v2/event/") => {
                let id: u64 = r.trim_start_matches("/wp/v2/event/").parse().unwrap_or(0);
                let Some(post) = s.posts.get_mut(&id) else {
                    return (
                        404,
                        json!({"code": "rest_post_invalid_id", "message": "Invalid post ID.", "data": {"status": 404}}),
                    );
                };
                for (k, v) in body.as_object().into_iter().flatten() {
                    if k == "meta" {
                        for (mk, mv) in v.as_object().into_iter().flatten() {
                            post["meta"][mk] = mv.clone();
                        }
                    } else {
                        post[k] = v.clone();
                    }
                }
                (200, post.clone())
            }
            _ => (
                404,
                json!({"code": "rest_no_route", "message": "No route was found matching the URL and request method.", "data": {"status": 404}}),
            ),
        }
    }
}

impl Respond for FakeWp {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().expect("fake");
        let route = req.url.path().trim_start_matches("/wp-json").to_owned();
        let method = req.method.as_str().to_owned();
        s.log.push((method.clone(), route.clone()));
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let (status, answer) = match route.as_str() {
            "/secutix-sync/v1/health" => (200, self.health(&s)),
            "/secutix-sync/v1/lookup" => {
                let ids: Vec<String> = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "external_ids")
                    .map(|(_, v)| v.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                let found: Vec<Value> = ids
                    .iter()
                    .filter(|x| !s.hidden.contains(x))
                    .filter_map(|x| {
                        s.posts.iter().find(|(_, p)| external_id_of(p).as_deref() == Some(x.as_str())).map(|(id, p)| {
                            json!({"id": id, "external_id": x, "status": p["status"], "content_hash": p["meta"]["secutix_content_hash"], "duplicates": []})
                        })
                    })
                    .collect();
                (200, json!(found))
            }
            "/batch/v1" if s.busy_batches > 0 => {
                s.busy_batches -= 1;
                return ResponseTemplate::new(503)
                    .insert_header("Retry-After", "120")
                    .set_body_json(json!({"code": "busy", "message": "Service Unavailable"}));
            }
            "/batch/v1" => {
                let requests = body["requests"].as_array().cloned().unwrap_or_default();
                let responses: Vec<Value> = requests
                    .iter()
                    .map(|r| {
                        let (status, b) = self.route(
                            &mut s,
                            r["method"].as_str().unwrap_or_default(),
                            r["path"].as_str().unwrap_or_default(),
                            &r["body"],
                        );
                        json!({"body": b, "status": status, "headers": []})
                    })
                    .collect();
                (207, json!({"responses": responses}))
            }
            _ => self.route(&mut s, &method, &route, &body),
        };
        ResponseTemplate::new(status).set_body_json(answer)
    }
}

async fn fake_wordpress() -> (MockServer, FakeWp) {
    let server = MockServer::start().await;
    let fake = FakeWp::new();
    Mock::given(wiremock::matchers::any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    (server, fake)
}

fn fake_target(server: &MockServer) -> Arc<dyn Target> {
    let settings: WordPressSettings = toml::from_str(&format!(
        "url = {:?}\nuser = \"sync\"\napplication_password = \"pw\"\nallow_insecure_http = true",
        server.uri()
    ))
    .expect("settings");
    Arc::new(WordPressTarget::new("wp", &settings, Duration::from_secs(20)).expect("target"))
}

fn three() -> Value {
    catalog(vec![season(
        1,
        "S26",
        -30,
        vec![
            product(1, "Hamlet", &[(11, 10)]),
            product(2, "Phèdre", &[(21, 11)]),
            product(3, "Tartuffe", &[(31, 12)]),
        ],
    )])
}

#[tokio::test]
async fn a_create_that_meets_an_existing_post_updates_it_and_a_refused_batch_item_is_dead_lettered_alone() {
    let (server, fake) = fake_wordpress().await;
    {
        let mut s = fake.0.lock().expect("fake");
        // Post 42 holds secutix-1 but the lookup misses it (it was created right after the lookup).
        s.posts.insert(
            42,
            json!({"id": 42, "status": "draft", "content": "editor text", "meta": {"secutix_external_id": "secutix-1"}}),
        );
        s.hidden.push("secutix-1".into());
        s.refuse.insert(
            "secutix-2".into(),
            (
                400,
                json!({"code": "rest_invalid_param", "message": "Invalid parameter(s): meta",
                       "data": {"status": 400, "params": {"meta": "meta.secutix_availability is not one of available, almost_full."}}}),
            ),
        );
    }
    let secutix = SecuTix::start(three()).await;
    let daemon = Daemon::new(&secutix, fake_target(&server), clock(), DeletePolicy::Unpublish);
    daemon.import().await;
    assert_eq!(daemon.plan().create, 3);
    let report = daemon.drain().await;
    assert_eq!((report.delivered, report.dead, report.pending), (2, 1, 0), "{report:?}");

    let s = fake.0.lock().expect("fake");
    let posts: Vec<&Value> = s.posts.values().collect();
    assert_eq!(
        posts.len(),
        2,
        "secutix-1 updated in post 42, secutix-3 created: {posts:#?}"
    );
    assert_eq!(s.posts[&42]["status"], "publish");
    assert_eq!(s.posts[&42]["content"], "editor text", "an update never sends the body");
    assert_eq!(
        daemon
            .outbox
            .acked("wp", "secutix-1")
            .expect("ack")
            .and_then(|a| a.remote_id)
            .as_deref(),
        Some("42")
    );
    let calls: Vec<String> = s.log.iter().map(|(m, p)| format!("{m} {p}")).collect();
    assert_eq!(
        calls,
        vec![
            "GET /secutix-sync/v1/health",
            "GET /secutix-sync/v1/lookup",
            "POST /batch/v1",
            "POST /wp/v2/event/42",
        ],
        "one health check, one lookup, one batch for three entries, one follow-up update"
    );
    drop(s);
    let dead = daemon.outbox.dead_letters(&["wp".into()]).expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].item.external_id, "secutix-2");
    assert!(
        dead[0].error.contains("HTTP 400") && dead[0].error.contains("meta.secutix_availability is not one of"),
        "{}",
        dead[0].error
    );
}

#[tokio::test]
async fn a_busy_site_answering_503_to_a_batch_has_every_operation_retried_after_retry_after() {
    let (server, fake) = fake_wordpress().await;
    fake.0.lock().expect("fake").busy_batches = 1;
    let secutix = SecuTix::start(three()).await;
    let manual = ManualClock::at(t0());
    let clock: SharedClock = manual.clone();
    let daemon = Daemon::new(&secutix, fake_target(&server), clock, DeletePolicy::Unpublish);
    daemon.import().await;
    daemon.plan();
    let report = daemon.drain().await;
    assert_eq!(
        (report.delivered, report.retried, report.pending),
        (0, 3, 3),
        "{report:?}"
    );
    for item in daemon.outbox.pending("wp").expect("pending") {
        assert_eq!(item.attempts, 1);
        assert!(
            item.next_attempt_at >= t0() + chrono::Duration::seconds(120),
            "{item:?}"
        );
        assert!(item.last_error.as_deref().is_some_and(|e| e.contains("HTTP 503")));
    }
    // Nothing is sent before Retry-After...
    manual.advance(Duration::from_secs(60));
    assert_eq!(daemon.drain().await.delivered, 0);
    // ...and everything once it has passed, in one batch.
    manual.advance(Duration::from_secs(3600));
    let report = daemon.drain().await;
    assert_eq!((report.delivered, report.pending), (3, 0));
    let s = fake.0.lock().expect("fake");
    assert_eq!(s.posts.len(), 3);
    assert_eq!(s.log.iter().filter(|(_, p)| p == "/batch/v1").count(), 2);
}

#[tokio::test]
async fn an_outdated_companion_plugin_is_named_with_the_fix() {
    let (server, fake) = fake_wordpress().await;
    fake.0.lock().expect("fake").plugin_version = "1.0.0".into();
    let target = fake_target(&server);
    let err = target.check().await.expect_err("refused");
    assert!(
        err.to_string().contains("version 1.0.0") && err.to_string().contains("contrib/wordpress/secutix-sync.php"),
        "{err}"
    );
    let secutix = SecuTix::start(three()).await;
    let daemon = Daemon::new(&secutix, target, clock(), DeletePolicy::Unpublish);
    daemon.import().await;
    daemon.plan();
    let report = daemon.drain().await;
    assert_eq!(
        (report.delivered, report.dead),
        (0, 3),
        "nothing written with a plugin that lacks the guard"
    );
    assert!(
        fake.0.lock().expect("fake").log.iter().all(|(m, _)| m == "GET"),
        "no write was attempted"
    );
}

#[test]
fn the_documented_example_loads_and_plain_http_is_named_as_a_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("wp-app-password");
    std::fs::write(&pw, "abcd efgh ijkl mnop qrst uvwx\n").expect("write");
    let example = default_toml_example("# WordPress (README", "#\n# Drupal")
        .replace("\"wp-app-password\"", &format!("{:?}", pw.display().to_string()));
    let cfg = load_targets(&example).expect("the example of config/default.toml is valid");
    let t = &cfg.targets[0];
    assert_eq!(t.kind, secutix_sync::targets::registry::TargetKind::Wordpress);
    assert_eq!(t.request_timeout(), Duration::from_secs(60));
    assert_eq!(t.concurrency(), 2);
    let target = secutix_sync::targets::build(
        t,
        &secutix_sync::store::Store::open(&dir.path().join("db"), 8, clock()).expect("store"),
    )
    .expect("builds");
    assert_eq!(target.max_batch(), 25);

    let problems =
        load_targets(&example.replace("https://www.theatre.fr", "http://www.theatre.fr")).expect_err("refused");
    assert_eq!(problems[0].key, "targets[0].wordpress.url", "{problems:?}");
    assert!(problems[0].message.contains("allow_insecure_http"));
    let problems =
        load_targets(&example.replace("initial_fields = [\"body\"]", "initial_fields = [\"body\", \"title\"]"))
            .expect_err("refused");
    assert_eq!(problems[0].key, "targets[0].wordpress.initial_fields", "{problems:?}");
}
