use super::*;

#[test]
fn routes_use_wp_json_or_the_rest_route_parameter() {
    let mut s: WordPressSettings =
        toml::from_str("url = \"https://www.theatre.fr/\"\nuser = \"sync\"\napplication_password = \"abcd efgh\"")
            .expect("settings");
    let t = WordPressTarget::new("site", &s, Duration::from_secs(5)).expect("target");
    assert_eq!(
        t.url("/wp/v2/event/4?force=true"),
        "https://www.theatre.fr/wp-json/wp/v2/event/4?force=true"
    );
    s.rest_route_param = true;
    let t = WordPressTarget::new("site", &s, Duration::from_secs(5)).expect("target");
    assert_eq!(
        t.url("/wp/v2/event/4?force=true"),
        "https://www.theatre.fr/?rest_route=/wp/v2/event/4&force=true"
    );
}

#[test]
fn plain_http_is_refused_unless_allowed_and_the_password_never_shows() {
    let s: WordPressSettings =
        toml::from_str("url = \"http://www.theatre.fr\"\nuser = \"sync\"\napplication_password = \"s3cret-pw\"")
            .expect("settings");
    let p = s.problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].1.contains("allow_insecure_http"), "{p:?}");
    let err = WordPressTarget::new("site", &s, Duration::from_secs(5))
        .err()
        .expect("refused");
    assert!(!err.to_string().contains("s3cret-pw"));
    assert!(!format!("{s:?}").contains("s3cret-pw"));
}

#[test]
fn wordpress_errors_read_as_code_message_and_params() {
    let body = json!({"code": "rest_invalid_param", "message": "Invalid parameter(s): meta",
        "data": {"status": 400, "params": {"meta": "meta.secutix_on_sale is not of type boolean."}}});
    assert_eq!(
        wp_message(&body).as_deref(),
        Some("rest_invalid_param: Invalid parameter(s): meta (meta: meta.secutix_on_sale is not of type boolean.)")
    );
    assert!(version_at_least("1.1.0", (1, 1)));
    assert!(version_at_least("2.0", (1, 1)));
    assert!(!version_at_least("1.0.9", (1, 1)));
}

#[test]
fn the_plugin_registers_every_meta_key_the_daemon_writes() {
    let php = include_str!("../../../contrib/wordpress/secutix-sync.php");
    for (key, ..) in fields::FIELDS {
        assert!(
            php.contains(&format!("'{META_PREFIX}{key}'")),
            "contrib/wordpress/secutix-sync.php lacks {META_PREFIX}{key}"
        );
    }
}
