use super::*;
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn minimal_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SECUTIX_SYNC__SECUTIX__INSTITUTION", "MOSA"),
        ("SECUTIX_SYNC__SECUTIX__OPERATOR", "MOSA_WEBSYNC"),
        ("SECUTIX_SYNC__SECUTIX__PARTNER", "Venue"),
        ("SECUTIX_SYNC__SECUTIX__SECRET", "s3cret-value"),
        ("SECUTIX_SYNC__STORE__PATH", "/tmp/x"),
    ]
}

#[test]
fn environment_overrides_defaults_and_lists_split_on_commas() {
    let mut vars = minimal_env();
    vars.push(("SECUTIX_SYNC__CATALOGUE__PRODUCT_FAMILIES", "SINGLE_ENTRY,PASS"));
    vars.push(("SECUTIX_SYNC__CATALOGUE__SHRINK_GUARD_RATIO", "0.25"));
    let loaded = Config::load(&Sources {
        env: env(&vars),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(loaded.config.secutix.institution, "MOSA");
    assert_eq!(loaded.config.catalogue.product_families, vec!["SINGLE_ENTRY", "PASS"]);
    assert_eq!(loaded.config.catalogue.shrink_guard_ratio, 0.25);
    assert_eq!(loaded.config.secutix.base_url(), "https://mosa.ws.secutix.com");
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
}

#[test]
fn unknown_env_variable_is_reported_with_its_name() {
    let mut vars = minimal_env();
    vars.push(("SECUTIX_SYNC__CATALOGUE__SHRINK_GAURD_RATIO", "0.2"));
    let loaded = Config::load(&Sources {
        env: env(&vars),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(loaded.unknown_keys.len(), 1);
    assert_eq!(loaded.unknown_keys[0].key, "catalogue.shrink_gaurd_ratio");
    assert!(
        loaded.unknown_keys[0]
            .message
            .contains("SECUTIX_SYNC__CATALOGUE__SHRINK_GAURD_RATIO")
    );
}

#[test]
fn unknown_file_key_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[secutix]\ninstitutoin = \"X\"\n").expect("write");
    let loaded = Config::load(&Sources {
        file: Some(path),
        env: env(&minimal_env()),
        overrides: None,
    })
    .expect("loads");
    assert_eq!(loaded.unknown_keys[0].key, "secutix.institutoin");
}

#[test]
fn every_problem_is_named_and_the_secret_never_printed() {
    let vars = vec![
        ("SECUTIX_SYNC__SECUTIX__SECRET", "top-secret-xyz"),
        ("SECUTIX_SYNC__CATALOGUE__SHRINK_GUARD_RATIO", "1.5"),
        ("SECUTIX_SYNC__CATALOGUE__DEADLINE", "0s"),
    ];
    let err = Config::load(&Sources {
        env: env(&vars),
        ..Default::default()
    })
    .expect_err("invalid");
    let ConfigError::Invalid(problems) = &err else {
        panic!("{err}")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "secutix.institution",
        "secutix.operator",
        "catalogue.shrink_guard_ratio",
        "catalogue.deadline",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert!(!err.to_string().contains("top-secret-xyz"));
}

#[test]
fn wrong_type_names_the_key() {
    let mut vars = minimal_env();
    vars.push(("SECUTIX_SYNC__SECUTIX__CALLS_PER_MINUTE", "lots"));
    let err = Config::load(&Sources {
        env: env(&vars),
        ..Default::default()
    })
    .expect_err("invalid");
    assert!(err.to_string().contains("calls_per_minute"), "{err}");
}

#[test]
fn debug_output_redacts_the_secret() {
    let loaded = Config::load(&Sources {
        env: env(&minimal_env()),
        ..Default::default()
    })
    .expect("loads");
    let dbg = format!("{:?}", loaded.config);
    assert!(!dbg.contains("s3cret-value"), "{dbg}");
}

#[test]
fn secret_file_is_read_and_missing_file_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::write(&path, "from-file\n").expect("write");
    let mut vars: Vec<(&str, &str)> = minimal_env()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("SECRET"))
        .collect();
    let p = path.to_string_lossy().to_string();
    vars.push(("SECUTIX_SYNC__SECUTIX__SECRET_FILE", &p));
    let loaded = Config::load(&Sources {
        env: env(&vars),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(
        loaded.config.secutix.read_secret().expect("secret").expose_secret(),
        "from-file"
    );

    let missing = dir.path().join("nope").to_string_lossy().to_string();
    let mut vars2: Vec<(&str, &str)> = minimal_env()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("SECRET"))
        .collect();
    vars2.push(("SECUTIX_SYNC__SECUTIX__SECRET_FILE", &missing));
    let err = Config::load(&Sources {
        env: env(&vars2),
        ..Default::default()
    })
    .expect_err("invalid");
    assert!(err.to_string().contains("secutix.secret_file"), "{err}");
}

#[test]
fn every_list_key_of_the_schema_reads_comma_separated_from_the_environment() {
    let keys: Vec<String> = load::schema().list_keys().map(str::to_owned).collect();
    assert!(keys.len() >= 5, "{keys:?}");
    for key in &keys {
        let name = format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_ascii_uppercase());
        let mut vars = minimal_env();
        vars.push((name.as_str(), "ab,cd"));
        let report = Config::report(&Sources {
            env: env(&vars),
            ..Default::default()
        })
        .expect("report");
        let type_problems: Vec<&Problem> = report
            .problems
            .iter()
            .filter(|p| p.key == *key && p.message.contains("is not a list"))
            .collect();
        assert!(type_problems.is_empty(), "{name}: {type_problems:?}");
        assert!(report.unknown_keys.is_empty(), "{name}: {:?}", report.unknown_keys);
    }
    let mut vars = minimal_env();
    vars.push((
        "SECUTIX_SYNC__CONTROL__CORS_ORIGINS",
        "https://a.example,https://b.example",
    ));
    vars.push(("SECUTIX_SYNC__ENTRIES__LANGUAGES", "fr,en"));
    vars.push(("SECUTIX_SYNC__CATALOGUE__PRODUCT_CODES", "1234"));
    let loaded = Config::load(&Sources {
        env: env(&vars),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(
        loaded.config.control.cors_origins,
        vec!["https://a.example", "https://b.example"]
    );
    assert_eq!(loaded.config.entries.languages, vec!["fr", "en"]);
    assert_eq!(loaded.config.catalogue.product_codes, vec!["1234"]);
}

#[test]
fn validate_config_reports_every_layer_of_problems_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[secutix]\ninstitution = \"MOSA\"\noperator = \"OP\"\npartner = \"P\"\nsecret_file = \"nope\"\n\
         request_timeout = 90\ncalls_per_minute = \"lots\"\ninstitutoin = \"X\"\n\
         [catalogue]\nshrink_guard_ratio = 1.5\n\
         [[targets]]\nname = \"site\"\nkind = \"file\"\n\
         [[targets]]\nname = \"hook\"\nkind = \"webhook\"\nmax_attempts = \"many\"\n\
         [targets.webhook]\nurl = \"not a url\"\nurll = \"x\"\n",
    )
    .expect("write");
    let report = Config::report(&Sources {
        file: Some(path),
        env: Some(BTreeMap::new()),
        overrides: None,
    })
    .expect("report");
    let message = |key: &str| -> String {
        report
            .problems
            .iter()
            .filter(|p| p.key == key)
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    // Two wrong types in one section, each with an example.
    assert!(message("secutix.request_timeout").contains("\"90s\""), "{report:#?}");
    assert!(
        message("secutix.calls_per_minute").contains("whole number"),
        "{report:#?}"
    );
    // A value problem next to the type problems.
    assert!(message("catalogue.shrink_guard_ratio").contains("1.5"), "{report:#?}");
    // A wrong kind lists the kinds; once.
    let kind = message("targets[0].kind");
    assert!(
        kind.contains("\"files\"") && kind.contains("\"drupal\"") && !kind.contains(" | "),
        "{kind}"
    );
    // The second target: its wrong type and its value problem, under its own place.
    assert!(
        message("targets[1].max_attempts").contains("whole number"),
        "{report:#?}"
    );
    assert!(message("targets[1].webhook.url").contains("not a url"), "{report:#?}");
    // No bogus problem on the targets as a whole.
    assert!(message("targets").is_empty(), "{report:#?}");
    // Unknown keys, with the likely intended one.
    let unknown: Vec<(&str, &str)> = report
        .unknown_keys
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect();
    assert!(
        unknown.contains(&(
            "secutix.institutoin",
            "unknown key (a typo?); it is ignored (did you mean secutix.institution?)"
        )),
        "{unknown:?}"
    );
    assert!(
        unknown.iter().any(|(k, _)| *k == "targets[1].webhook.urll"),
        "{unknown:?}"
    );
    // The missing secret, apart.
    assert_eq!(report.credentials.len(), 1, "{:?}", report.credentials);
    assert_eq!(report.credentials[0].owner, CredentialOwner::Secutix);
    assert_eq!(report.credentials[0].problem.key, "secutix.secret_file");
    // Nothing in Rust's wording.
    let all = format!("{:?}{:?}", report.problems, report.unknown_keys);
    for rust in ["variant constructor", "for key `", "Some(", "None"] {
        assert!(!all.contains(rust), "{rust} in {all}");
    }
}

#[test]
fn a_configuration_without_targets_is_valid_but_warned_about() {
    let report = Config::report(&Sources {
        env: env(&minimal_env()),
        ..Default::default()
    })
    .expect("report");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].message.contains("sent nowhere"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn credentials_are_required_only_by_the_commands_that_use_them() {
    let vars: Vec<(&str, &str)> = minimal_env()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("SECRET"))
        .chain([("SECUTIX_SYNC__SECUTIX__SECRET_FILE", "no-such-secutix-secret")])
        .collect();
    let sources = Sources {
        env: env(&vars),
        overrides: Some(
            "[[targets]]\nname = \"site\"\nkind = \"wordpress\"\n[targets.wordpress]\n\
             url = \"https://www.theatre.example\"\nuser = \"u\"\napplication_password_file = \"no-such-file\"\n\
             [[targets]]\nname = \"out\"\nkind = \"files\"\n[targets.files]\npath = \"/tmp/out\"\n"
                .into(),
        ),
        ..Default::default()
    };
    let err = Config::load(&sources).expect_err("run needs every credential");
    let text = err.to_string();
    assert!(
        text.contains("secutix.secret_file") && text.contains("targets[0].wordpress.application_password_file"),
        "{text}"
    );
    assert!(
        text.contains("CREDENTIALS_DIRECTORY") && text.contains("LoadCredential="),
        "{text}"
    );

    let loaded = Config::load_without_credentials(&sources).expect("the store commands load it");
    assert_eq!(loaded.credentials.len(), 2, "{:?}", loaded.credentials);
    loaded
        .require_credentials(false, &["out"])
        .expect("the files target needs none");
    let wp = loaded
        .require_credentials(false, &["site"])
        .expect_err("wordpress needs its password");
    assert!(!wp.to_string().contains("secutix.secret_file"), "{wp}");
    let secutix = loaded
        .require_credentials(true, &[])
        .expect_err("SecuTix needs its secret");
    assert!(secutix.to_string().contains("secutix.secret_file"), "{secutix}");
}
