//! The `drupal` target against a scripted Drupal (wiremock) answering JSON:API as Drupal core does: client
//! UUIDs on create, `409 Conflict: Entity already exists.` on a repeated create, 404 on a missing node,
//! `422` validation errors with a pointer, `429` with `Retry-After`, HTTP Basic and OAuth2 client
//! credentials. A catalogue goes through the whole pipeline (mock SecuTix, import, plan, worker).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::cms::*;
use crate::common::*;
use secutix_sync::clock::SharedClock;
use secutix_sync::push::DeletePolicy;
use secutix_sync::targets::Target;
use secutix_sync::targets::drupal::{DEFAULT_UUID_NAMESPACE, DrupalSettings, DrupalTarget, JSONAPI, node_uuid};
use secutix_sync::targets::fields::FIELDS;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// What the scripted Drupal holds and how it behaves.
struct DrupalState {
    /// Nodes of the `event` bundle by UUID: their attributes.
    nodes: BTreeMap<String, Value>,
    /// Attributes the content type has.
    fields: BTreeSet<String>,
    /// The next JSON:API requests to answer 429 with `Retry-After: 120`.
    throttle: u32,
    /// Basic credentials accepted (`user:password`); `None` = OAuth2 bearer tokens.
    basic: Option<String>,
    /// The OAuth2 token currently valid, and how many were issued.
    token: Option<String>,
    tokens_issued: u32,
    /// (method, path, body) of every JSON:API request.
    log: Vec<(String, String, Value)>,
}

#[derive(Clone)]
struct FakeDrupal(Arc<Mutex<DrupalState>>);

fn error(status: u16, title: &str, detail: &str, pointer: Option<&str>) -> ResponseTemplate {
    let mut e = json!({"title": title, "status": status.to_string(), "detail": detail,
                       "links": {"info": {"href": "http://jsonapi.org/format/#errors"}}});
    if let Some(p) = pointer {
        e["source"] = json!({"pointer": p});
    }
    ResponseTemplate::new(status)
        .insert_header("Content-Type", JSONAPI)
        .set_body_json(json!({"jsonapi": {"version": "1.0", "meta": {"links": {"self": {"href": "http://jsonapi.org/format/1.0/"}}}}, "errors": [e]}))
}

fn document(status: u16, uuid: &str, attributes: &Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", JSONAPI)
        .set_body_json(
            json!({"jsonapi": {"version": "1.0"}, "data": {"type": "node--event", "id": uuid,
            "attributes": attributes, "links": {"self": {"href": format!("/jsonapi/node/event/{uuid}")}}}}),
        )
}

impl FakeDrupal {
    fn new(basic: Option<&str>) -> Self {
        let mut fields: BTreeSet<String> = ["title", "body", "status", "field_editor_note"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        fields.extend(FIELDS.iter().map(|f| format!("field_secutix_{}", f.0)));
        Self(Arc::new(Mutex::new(DrupalState {
            nodes: BTreeMap::new(),
            fields,
            throttle: 0,
            basic: basic.map(str::to_owned),
            token: None,
            tokens_issued: 0,
            log: Vec::new(),
        })))
    }

    /// Checks the attributes as Drupal's validation would; `Some` is the 422 to answer.
    fn invalid(s: &DrupalState, attributes: &Value) -> Option<ResponseTemplate> {
        for (k, v) in attributes.as_object().into_iter().flatten() {
            if !s.fields.contains(k) {
                return Some(error(
                    422,
                    "Unprocessable Entity",
                    &format!("The attribute {k} does not exist on the node--event resource type."),
                    None,
                ));
            }
            if k == "title" && v.as_str().is_some_and(|t| t.chars().count() > 255) {
                return Some(error(
                    422,
                    "Unprocessable Entity",
                    "title: This value is too long. It should have 255 characters or less.",
                    Some("/data/attributes/title"),
                ));
            }
        }
        None
    }
}

impl Respond for FakeDrupal {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().expect("fake");
        let path = req.url.path().to_owned();
        let header = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        if path == "/oauth/token" {
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&req.body).into_owned().collect();
            if form.get("grant_type").map(String::as_str) != Some("client_credentials")
                || form.get("client_id").map(String::as_str) != Some("consumer-uuid")
                || form.get("client_secret").map(String::as_str) != Some("consumer-secret")
            {
                return ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client",
                    "error_description": "Client authentication failed", "message": "Client authentication failed"}));
            }
            s.tokens_issued += 1;
            let token = format!("tok-{}", s.tokens_issued);
            s.token = Some(token.clone());
            return ResponseTemplate::new(200)
                .set_body_json(json!({"token_type": "Bearer", "expires_in": 300, "access_token": token}));
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        s.log.push((req.method.to_string(), path.clone(), body.clone()));
        let auth = header("authorization");
        let authorised = match (&s.basic, &s.token) {
            (Some(basic), _) => {
                use base64::Engine as _;
                auth == format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(basic))
            }
            (None, Some(token)) => auth == format!("Bearer {token}"),
            (None, None) => false,
        };
        if !authorised {
            return error(401, "Unauthorized", "No authentication credentials provided.", None);
        }
        if s.throttle > 0 {
            s.throttle -= 1;
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "120")
                .set_body_string("Too Many Requests");
        }
        if header("accept") != JSONAPI {
            return error(406, "Not Acceptable", "Not acceptable format: json", None);
        }
        let method = req.method.as_str();
        if (method == "POST" || method == "PATCH") && header("content-type") != JSONAPI {
            return error(
                415,
                "Unsupported Media Type",
                "No route found that matches \"Content-Type: application/json\"",
                None,
            );
        }
        let data = &body["data"];
        match (method, path.trim_start_matches("/jsonapi/node/event")) {
            ("GET", "") => ResponseTemplate::new(200)
                .insert_header("Content-Type", JSONAPI)
                .set_body_json(json!({"jsonapi": {"version": "1.0"}, "data": [], "links": {}})),
            ("POST", "") => {
                if data["type"] != "node--event" {
                    return error(
                        409,
                        "Conflict",
                        "The provided type (x) does not match the destination resource types (node--event).",
                        None,
                    );
                }
                let Some(uuid) = data["id"].as_str().map(str::to_owned) else {
                    return error(
                        422,
                        "Unprocessable Entity",
                        "IDs should be properly generated and formatted UUIDs as described in RFC 4122.",
                        Some("/data/id"),
                    );
                };
                if let Some(bad) = Self::invalid(&s, &data["attributes"]) {
                    return bad;
                }
                if s.nodes.contains_key(&uuid) {
                    return error(409, "Conflict", "Conflict: Entity already exists.", None);
                }
                s.nodes.insert(uuid.clone(), data["attributes"].clone());
                document(201, &uuid, &data["attributes"])
            }
            ("PATCH", rest) => {
                let uuid = rest.trim_start_matches('/').to_owned();
                if !s.nodes.contains_key(&uuid) {
                    return error(
                        404,
                        "Not Found",
                        "The \"node\" parameter was not converted for the path \"/jsonapi/node/event/{entity}\" (route name: \"jsonapi.node--event.individual\")",
                        None,
                    );
                }
                if data["id"] != uuid.as_str() {
                    return error(
                        400,
                        "Bad Request",
                        "The \"id\" of the resource must match the URL.",
                        Some("/data/id"),
                    );
                }
                if let Some(bad) = Self::invalid(&s, &data["attributes"]) {
                    return bad;
                }
                let node = s.nodes.get_mut(&uuid).expect("node");
                for (k, v) in data["attributes"].as_object().into_iter().flatten() {
                    node[k] = v.clone();
                }
                let node = node.clone();
                document(200, &uuid, &node)
            }
            ("DELETE", rest) => {
                let uuid = rest.trim_start_matches('/').to_owned();
                if s.nodes.remove(&uuid).is_some() {
                    ResponseTemplate::new(204)
                } else {
                    error(
                        404,
                        "Not Found",
                        "The \"node\" parameter was not converted for the path \"/jsonapi/node/event/{entity}\"",
                        None,
                    )
                }
            }
            _ => error(404, "Not Found", "No route found", None),
        }
    }
}

async fn fake_drupal(basic: Option<&str>) -> (MockServer, FakeDrupal) {
    let server = MockServer::start().await;
    let fake = FakeDrupal::new(basic);
    Mock::given(wiremock::matchers::any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    (server, fake)
}

fn target(server: &MockServer, extra: &str) -> Arc<dyn Target> {
    let settings: DrupalSettings = toml::from_str(&format!(
        "url = {:?}\nallow_insecure_http = true\n{extra}",
        server.uri()
    ))
    .expect("settings");
    Arc::new(DrupalTarget::new("drupal", &settings, Duration::from_secs(20)).expect("target"))
}

const BASIC: &str = "user = \"api\"\npassword = \"pw\"";

fn three(titles: [&str; 3]) -> Value {
    catalog(vec![season(
        1,
        "S26",
        -30,
        vec![
            product(1, titles[0], &[(11, 10)]),
            product(2, titles[1], &[(21, 11)]),
            product(3, titles[2], &[(31, 12)]),
        ],
    )])
}

fn uuid(xid: &str) -> String {
    node_uuid(&DEFAULT_UUID_NAMESPACE, xid).to_string()
}

#[tokio::test]
async fn nodes_get_uuidv5_ids_and_owned_fields_only_and_an_unchanged_run_sends_nothing() {
    let (server, fake) = fake_drupal(Some("api:pw")).await;
    let secutix = SecuTix::start(three(["Hamlet", "Phèdre", "Tartuffe"])).await;
    let daemon = Daemon::new(&secutix, target(&server, BASIC), clock(), DeletePolicy::Unpublish);
    let (plan, report) = daemon.sync().await;
    assert_eq!((plan.create, report.delivered), (3, 3));
    {
        let s = fake.0.lock().expect("fake");
        let ids: Vec<&String> = s.nodes.keys().collect();
        let mut want = [uuid("secutix-1"), uuid("secutix-2"), uuid("secutix-3")];
        want.sort();
        assert_eq!(ids, want.iter().collect::<Vec<_>>(), "UUIDv5 of the external ids");
        let hamlet = &s.nodes[&uuid("secutix-1")];
        assert_eq!(hamlet["title"], "Hamlet");
        assert_eq!(
            hamlet["body"],
            json!({"value": "<p>Hamlet</p>", "format": "basic_html"})
        );
        assert_eq!(hamlet["status"], true);
        assert_eq!(hamlet["field_secutix_external_id"], "secutix-1");
        assert_eq!(hamlet["field_secutix_product_id"], "1");
        assert_eq!(hamlet["field_secutix_price_min"], "35.00", "decimals as strings");
        assert_eq!(hamlet["field_secutix_currency"], "EUR");
        assert_eq!(hamlet["field_secutix_on_sale"], true);
        assert_eq!(hamlet["field_secutix_availability"], "unknown");
        assert_eq!(hamlet["field_secutix_availability_code"], 0);
        assert_eq!(hamlet["field_secutix_next_performance"], "2026-03-12T11:00:00+01:00");
        assert_eq!(
            hamlet["field_secutix_booking_url"],
            "https://mosa.shop.secutix.com/api/1/redirect/product?id=1&lang=fr"
        );
        assert_eq!(
            daemon
                .outbox
                .acked("drupal", "secutix-1")
                .expect("ack")
                .and_then(|a| a.remote_id),
            Some(uuid("secutix-1"))
        );
    }
    for r in server.received_requests().await.expect("recorded") {
        assert_eq!(
            r.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some(JSONAPI)
        );
        assert_eq!(r.headers.get("accept").and_then(|v| v.to_str().ok()), Some(JSONAPI));
    }

    // Unchanged: nothing.
    let (plan, _) = daemon.sync().await;
    assert!(plan.operations.is_empty(), "{plan:?}");
    // A sold-out performance: one PATCH of that node, without the body.
    fake.0.lock().expect("fake").log.clear();
    daemon.set_level(21, 3);
    daemon.sync().await;
    let s = fake.0.lock().expect("fake");
    assert_eq!(s.log.len(), 1, "{:?}", s.log);
    let (m, p, body) = &s.log[0];
    assert_eq!(
        (m.as_str(), p.as_str()),
        ("PATCH", format!("/jsonapi/node/event/{}", uuid("secutix-2")).as_str())
    );
    let attributes = &body["data"]["attributes"];
    assert_eq!(attributes["field_secutix_availability"], "sold_out");
    assert_eq!(attributes["field_secutix_booking_url"], Value::Null, "cleared");
    assert!(
        attributes.get("body").is_none(),
        "an update never sends the body: {attributes}"
    );
    assert_eq!(body["data"]["type"], "node--event");
}

#[tokio::test]
async fn a_lost_store_meets_409_and_patches_in_place_keeping_the_editors_fields() {
    let (server, fake) = fake_drupal(Some("api:pw")).await;
    let secutix = SecuTix::start(three(["Hamlet", "Phèdre", "Tartuffe"])).await;
    let daemon = Daemon::new(&secutix, target(&server, BASIC), clock(), DeletePolicy::Unpublish);
    daemon.sync().await;
    {
        let mut s = fake.0.lock().expect("fake");
        let node = s.nodes.get_mut(&uuid("secutix-1")).expect("node");
        node["body"] = json!({"value": "<p>Le texte de l'équipe</p>", "format": "full_html"});
        node["field_editor_note"] = json!("Prévoir des mouchoirs");
        s.log.clear();
    }
    drop(daemon);

    // A new, empty store; SecuTix changed a title meanwhile.
    secutix.set(three(["Hamlet", "Phèdre (reprise)", "Tartuffe"]));
    let fresh = Daemon::new(
        &secutix,
        target(&server, BASIC),
        clock_at(chrono::Duration::days(1)),
        DeletePolicy::Unpublish,
    );
    let (plan, report) = fresh.sync().await;
    assert_eq!((plan.create, report.delivered, report.dead), (3, 3, 0));
    let s = fake.0.lock().expect("fake");
    assert_eq!(s.nodes.len(), 3, "no duplicate");
    for xid in ["secutix-1", "secutix-2", "secutix-3"] {
        let node_path = format!("/jsonapi/node/event/{}", uuid(xid));
        let i = s
            .log
            .iter()
            .position(|(m, _, b)| m == "POST" && b["data"]["id"] == uuid(xid))
            .unwrap_or_else(|| panic!("no create for {xid}: {:?}", s.log));
        assert!(
            s.log[i + 1..].iter().any(|(m, p, _)| m == "PATCH" && *p == node_path),
            "{xid}: the create answered 409, then PATCH {node_path}"
        );
    }
    assert_eq!(
        s.nodes[&uuid("secutix-2")]["title"],
        "Phèdre (reprise)",
        "updated in place"
    );
    let hamlet = &s.nodes[&uuid("secutix-1")];
    assert_eq!(
        hamlet["body"]["value"], "<p>Le texte de l'équipe</p>",
        "the body is the editors'"
    );
    assert_eq!(hamlet["field_editor_note"], "Prévoir des mouchoirs");
    for (m, _, body) in &s.log {
        if m == "PATCH" {
            assert!(body["data"]["attributes"].get("body").is_none());
        }
    }
}

#[tokio::test]
async fn a_validation_error_is_a_dead_letter_with_drupals_message_and_does_not_block_the_others() {
    let (server, fake) = fake_drupal(Some("api:pw")).await;
    let long = "Très long titre ".repeat(20);
    let secutix = SecuTix::start(three(["Hamlet", &long, "Tartuffe"])).await;
    let daemon = Daemon::new(&secutix, target(&server, BASIC), clock(), DeletePolicy::Unpublish);
    daemon.import().await;
    daemon.plan();
    let report = daemon.drain().await;
    assert_eq!((report.delivered, report.dead, report.pending), (2, 1, 0), "{report:?}");
    let dead = daemon.outbox.dead_letters(&["drupal".into()]).expect("dead letters");
    assert_eq!(dead[0].item.external_id, "secutix-2");
    assert!(
        dead[0].error.contains("HTTP 422")
            && dead[0]
                .error
                .contains("title: This value is too long. It should have 255 characters or less.")
            && dead[0].error.contains("(at /data/attributes/title)"),
        "{}",
        dead[0].error
    );
    let posts = fake
        .0
        .lock()
        .expect("fake")
        .log
        .iter()
        .filter(|(m, _, _)| m == "POST")
        .count();
    assert_eq!(posts, 3, "a 422 is not retried");

    // A field missing on the content type: every create is refused, naming it.
    let (server, _fake) = fake_drupal(Some("api:pw")).await;
    let mapped = Daemon::new(
        &secutix,
        target(&server, &format!("{BASIC}\n[fields]\ngenre = \"field_genre\"")),
        clock(),
        DeletePolicy::Unpublish,
    );
    mapped.import().await;
    mapped.plan();
    let report = mapped.drain().await;
    assert_eq!(report.dead, 3);
    let dead = mapped.outbox.dead_letters(&["drupal".into()]).expect("dead letters");
    assert!(
        dead[0]
            .error
            .contains("The attribute field_genre does not exist on the node--event resource type."),
        "{}",
        dead[0].error
    );
}

#[tokio::test]
async fn a_429_pauses_the_target_until_retry_after_then_delivers_once() {
    let (server, fake) = fake_drupal(Some("api:pw")).await;
    fake.0.lock().expect("fake").throttle = 1;
    let secutix = SecuTix::start(three(["Hamlet", "Phèdre", "Tartuffe"])).await;
    let manual = ManualClock::at(t0());
    let clock: SharedClock = manual.clone();
    let mut daemon = Daemon::new(&secutix, target(&server, BASIC), clock, DeletePolicy::Unpublish);
    daemon.settings.concurrency = 1;
    daemon.import().await;
    daemon.plan();
    let report = daemon.drain().await;
    assert_eq!((report.delivered, report.retried, report.dead), (0, 1, 0), "{report:?}");
    assert_eq!(report.pending, 3, "the target is paused: nothing else is sent");
    let throttled: Vec<_> = daemon
        .outbox
        .pending("drupal")
        .expect("pending")
        .into_iter()
        .filter(|i| i.attempts == 1)
        .collect();
    assert_eq!(throttled.len(), 1);
    assert!(throttled[0].next_attempt_at >= t0() + chrono::Duration::seconds(120));
    assert!(
        throttled[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 429"))
    );

    manual.advance(Duration::from_secs(121));
    let report = daemon.drain().await;
    assert_eq!((report.delivered, report.pending, report.dead), (3, 0, 0), "{report:?}");
    let s = fake.0.lock().expect("fake");
    assert_eq!(s.nodes.len(), 3);
    assert_eq!(s.log.len(), 4, "one 429, then three creates");
}

#[tokio::test]
async fn a_dropped_product_is_unpublished_with_status_false_or_deleted_when_the_policy_says_so() {
    for policy in [DeletePolicy::Unpublish, DeletePolicy::Delete] {
        let (server, fake) = fake_drupal(Some("api:pw")).await;
        let secutix = SecuTix::start(three(["Hamlet", "Phèdre", "Tartuffe"])).await;
        let daemon = Daemon::new(&secutix, target(&server, BASIC), clock(), policy);
        daemon.sync().await;
        secutix.set(catalog(vec![season(
            1,
            "S26",
            -30,
            vec![product(1, "Hamlet", &[(11, 10)]), product(2, "Phèdre", &[(21, 11)])],
        )]));
        let (plan, _) = daemon.sync().await;
        let s = fake.0.lock().expect("fake");
        match policy {
            DeletePolicy::Unpublish => {
                assert_eq!(plan.unpublish, 1);
                let node = &s.nodes[&uuid("secutix-3")];
                assert_eq!(node["status"], false);
                assert_eq!(node["field_secutix_availability"], "not_on_sale");
                assert_eq!(s.nodes[&uuid("secutix-1")]["status"], true);
            }
            _ => {
                assert_eq!(plan.delete, 1);
                assert!(!s.nodes.contains_key(&uuid("secutix-3")), "deleted");
                assert_eq!(s.log.last().map(|l| l.0.as_str()), Some("DELETE"));
                assert_eq!(s.nodes.len(), 2);
            }
        }
    }
}

#[tokio::test]
async fn oauth2_client_credentials_are_fetched_once_reused_and_renewed_after_a_401() {
    let (server, fake) = fake_drupal(None).await;
    let secutix = SecuTix::start(three(["Hamlet", "Phèdre", "Tartuffe"])).await;
    let oauth = "auth = \"oauth2\"\nclient_id = \"consumer-uuid\"\nclient_secret = \"consumer-secret\"\nscope = \"secutix_sync\"";
    let daemon = Daemon::new(&secutix, target(&server, oauth), clock(), DeletePolicy::Unpublish);
    daemon.sync().await;
    assert_eq!(
        fake.0.lock().expect("fake").tokens_issued,
        1,
        "one token for three requests"
    );
    // The token is revoked on the Drupal side: the next request gets 401, the target fetches a new one.
    fake.0.lock().expect("fake").token = Some("revoked-elsewhere".into());
    daemon.set_level(11, 2);
    let (_, report) = daemon.sync().await;
    assert_eq!(report.delivered, 1);
    {
        let s = fake.0.lock().expect("fake");
        assert_eq!(s.tokens_issued, 2);
        assert_eq!(s.nodes[&uuid("secutix-1")]["field_secutix_availability"], "almost_full");
    }
    let token_requests: Vec<_> = server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .collect();
    let form = String::from_utf8_lossy(&token_requests[0].body).into_owned();
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("scope=secutix_sync"),
        "{form}"
    );

    // A wrong secret: a permanent error naming what to check, without the secret.
    let bad = target(
        &server,
        "auth = \"oauth2\"\nclient_id = \"consumer-uuid\"\nclient_secret = \"wrong-secret-value\"",
    );
    let err = bad.check().await.expect_err("refused");
    assert!(err.to_string().contains("client_id, client_secret"), "{err}");
    assert!(!err.to_string().contains("wrong-secret-value"));
}

#[tokio::test]
async fn field_names_follow_the_mapping_and_groups_not_owned_are_never_sent() {
    let (server, fake) = fake_drupal(Some("api:pw")).await;
    {
        let mut s = fake.0.lock().expect("fake");
        s.fields.insert("field_prix_minimum".into());
        s.fields.remove("field_secutix_price_min");
        s.fields.remove("field_secutix_genre");
    }
    let secutix = SecuTix::start(three(["Hamlet", "Phèdre", "Tartuffe"])).await;
    let extra = format!(
        "{BASIC}\nowned_fields = [\"title\", \"status\", \"secutix\", \"prices\", \"availability\"]\n\
         initial_fields = []\n[fields]\nprice_min = \"field_prix_minimum\"\ngenre = \"\""
    );
    let daemon = Daemon::new(&secutix, target(&server, &extra), clock(), DeletePolicy::Unpublish);
    daemon.sync().await;
    let s = fake.0.lock().expect("fake");
    let hamlet = &s.nodes[&uuid("secutix-1")];
    assert_eq!(hamlet["field_prix_minimum"], "35.00");
    for absent in [
        "field_secutix_genre",
        "field_secutix_booking_url",
        "field_secutix_next_performance",
        "field_secutix_state",
        "body",
    ] {
        assert!(hamlet.get(absent).is_none(), "{absent} sent: {hamlet}");
    }
    assert_eq!(
        hamlet["field_secutix_content_hash"].as_str().map(str::len),
        Some(64),
        "bookkeeping always sent"
    );
}

#[test]
fn the_documented_example_loads_and_bad_settings_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("drupal-password");
    std::fs::write(&pw, "pw\n").expect("write");
    let example = default_toml_example("# Drupal (README", "#\n# pass Culture")
        .replace("\"drupal-password\"", &format!("{:?}", pw.display().to_string()));
    let cfg = load_targets(&example).expect("the example of config/default.toml is valid");
    assert_eq!(cfg.targets[0].kind, secutix_sync::targets::registry::TargetKind::Drupal);
    let problems =
        load_targets(&example.replace("bundle = \"event\"", "bundle = \"Event Page\"")).expect_err("refused");
    assert_eq!(problems[0].key, "targets[0].drupal.bundle", "{problems:?}");
    let problems = load_targets(&example.replace("auth = \"basic\"", "auth = \"oauth2\"")).expect_err("refused");
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["targets[0].drupal.client_id", "targets[0].drupal.client_secret_file"]
    );
}
