use super::*;

#[test]
fn node_uuids_are_uuidv5_of_the_external_id_in_the_documented_namespace() {
    assert_eq!(
        DEFAULT_UUID_NAMESPACE,
        Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:secutix-sync:entry")
    );
    // The README quotes this value so that an agency can check its own computation.
    assert_eq!(
        node_uuid(&DEFAULT_UUID_NAMESPACE, "secutix-123").to_string(),
        "3f20676a-4833-5a6a-b065-c68577e2d1d6"
    );
    assert_eq!(node_uuid(&DEFAULT_UUID_NAMESPACE, "secutix-1").get_version_num(), 5);
}

#[test]
fn settings_name_bad_field_names_and_missing_credentials() {
    let s: DrupalSettings = toml::from_str(
        "url = \"https://www.theatre.fr\"\nuser = \"api\"\npassword = \"s3cret-drupal\"\n[fields]\nprice_mini = \"x\"\nprice_max = \"Bad-Name\"",
    )
    .expect("settings");
    let keys: Vec<String> = s.problems().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["fields.price_max", "fields.price_mini"]);
    assert!(!format!("{s:?}").contains("s3cret-drupal"));
    let s: DrupalSettings = toml::from_str("url = \"https://www.theatre.fr\"\nauth = \"oauth2\"").expect("settings");
    let keys: Vec<String> = s.problems().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["client_id", "client_secret_file"]);
}

#[test]
fn jsonapi_errors_read_as_detail_and_pointer() {
    let body = json!({"jsonapi": {"version": "1.0"}, "errors": [{"title": "Unprocessable Entity", "status": "422",
        "detail": "title: This value is too long.", "source": {"pointer": "/data/attributes/title"}}]});
    assert_eq!(
        jsonapi_message(&body).as_deref(),
        Some("title: This value is too long. (at /data/attributes/title)")
    );
}
