//! The operator's documentation keeps up with the code: every entry field is in the README's "Entries"
//! section, every `[entries]` key has its own comment in `config/default.toml`, and every `[[targets]]`,
//! `[targets.files]` and `[targets.webhook]` key is in the README's table and in `config/default.toml`.
//! Field names come from the types themselves (their serde field lists), not from a copy in this file;
//! every subcommand of the binary (from its own `--help`) has its line in the README's "Commands" table; the
//! "Set-up" section is the two commands (the demo, the tests) and `.ci/run` runs the same test command.

use serde::de::{self, DeserializeOwned, Visitor};

const README: &str = include_str!("../../README.md");
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The field names a `#[derive(Deserialize)]` struct asks its deserializer for.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields captured"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    assert!(
        !fields.is_empty(),
        "{} is a struct with fields",
        std::any::type_name::<T>()
    );
    fields
}

/// The text of the README section `## title` (up to the next `## `).
fn section(title: &str) -> &'static str {
    let start = README
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has a \"## {title}\" section"));
    let rest = &README[start + 4..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn every_entry_field_is_in_the_readme() {
    let schema = secutix_sync::entry::entry_schema();
    let text = section("Entries");
    let mut missing = Vec::new();
    let mut check = |obj: &serde_json::Value, what: &str| {
        for field in obj["properties"].as_object().expect("properties").keys() {
            if !text.contains(field.as_str()) {
                missing.push(format!("{what}.{field}"));
            }
        }
    };
    check(&schema, "entry");
    for def in [
        "EntryPerformance",
        "EntryPrice",
        "Availability",
        "PriceRange",
        "NextPerformance",
        "Named",
    ] {
        check(&schema["$defs"][def], def);
    }
    assert!(
        missing.is_empty(),
        "not described in the README's Entries section: {missing:?}"
    );
    for status in ["available", "almost_full", "sold_out", "not_on_sale", "unknown"] {
        assert!(
            text.contains(&format!("`{status}`")),
            "availability status {status} described"
        );
    }
    assert!(text.contains("docs/entry.schema.json") && text.contains("mapping_version"));
}

#[test]
fn every_entries_key_has_its_own_comment_in_default_toml() {
    let section = DEFAULT_TOML
        .split("\n[entries]\n")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("default.toml has an [entries] section");
    let lines: Vec<&str> = section.lines().collect();
    let mut seen = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        assert!(
            i > 0 && lines[i - 1].starts_with('#'),
            "[entries] {key} has no comment line right above it"
        );
        seen.push(key);
    }
    let mut fields: Vec<&str> = fields_of::<secutix_sync::merge::EntriesConfig>().to_vec();
    fields.sort();
    seen.sort();
    assert_eq!(seen, fields, "default.toml lists every [entries] key, and only those");
}

#[test]
fn every_target_key_is_in_the_readme_and_default_toml() {
    use secutix_sync::targets::drupal::DrupalSettings;
    use secutix_sync::targets::files::FilesSettings;
    use secutix_sync::targets::registry::TargetConfig;
    use secutix_sync::targets::webhook::WebhookSettings;
    use secutix_sync::targets::wordpress::WordPressSettings;
    let readme = section("Targets and the outbox");
    let mut missing = Vec::new();
    let sub_tables = ["files", "webhook", "passculture", "wordpress", "drupal"];
    let keys = fields_of::<TargetConfig>()
        .iter()
        .filter(|k| !sub_tables.contains(k))
        .map(|k| (k.to_string(), k.to_string()))
        .chain(
            fields_of::<FilesSettings>()
                .iter()
                .map(|k| (format!("files.{k}"), k.to_string())),
        )
        .chain(
            fields_of::<WebhookSettings>()
                .iter()
                .map(|k| (format!("webhook.{k}"), k.to_string())),
        );
    for (qualified, key) in keys {
        if !readme.contains(&format!("`{qualified}`")) {
            missing.push(format!("README: {qualified}"));
        }
        if !DEFAULT_TOML.contains(&format!("#   {key} = ")) && !DEFAULT_TOML.contains(&format!("# {key} = ")) {
            missing.push(format!("default.toml: {key}"));
        }
    }
    // The CMS targets document their keys in their own sections.
    let cms = [
        ("The wordpress target", fields_of::<WordPressSettings>()),
        ("The drupal target", fields_of::<DrupalSettings>()),
    ];
    for (title, fields) in cms {
        let text = section(title);
        for key in fields {
            if !text.contains(&format!("`{key}`")) {
                missing.push(format!("README ({title}): {key}"));
            }
            if !DEFAULT_TOML.contains(&format!("#   {key} = ")) && !DEFAULT_TOML.contains(&format!("# {key} = ")) {
                missing.push(format!("default.toml: {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "target keys not documented: {missing:?}");
}

/// The subcommands `secutix-sync [args] --help` lists (without `help`).
fn subcommands(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secutix-sync"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let list = text
        .split("Commands:\n")
        .nth(1)
        .map(|rest| rest.split("\n\n").next().unwrap_or(""))
        .unwrap_or("");
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_has_a_line_with_its_exit_codes_in_the_commands_table() {
    let text = section("Commands");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| `")).collect();
    let top = subcommands(&[]);
    assert!(top.len() >= 10, "the binary lists its commands: {top:?}");
    let mut missing = Vec::new();
    for command in &top {
        let nested = subcommands(&[command.as_str()]);
        let row = rows.iter().find(|r| r.starts_with(&format!("| `{command}")));
        match row {
            None => missing.push(command.clone()),
            Some(row) => {
                for sub in &nested {
                    // `entries show`/`entries list` have a line each; `dlq list|replay|drop` share one.
                    let own_line = rows.iter().any(|r| r.starts_with(&format!("| `{command} {sub}")));
                    if !own_line && !row.contains(sub.as_str()) {
                        missing.push(format!("{command} {sub}"));
                    }
                }
                let codes = row.rsplit('|').nth(1).unwrap_or("");
                assert!(
                    codes.trim_start().starts_with('0'),
                    "the line of {command} ends with its exit codes: {row}"
                );
            }
        }
    }
    assert!(missing.is_empty(), "not in the README's Commands table: {missing:?}");
}

#[test]
fn set_up_is_two_commands_and_ci_runs_the_same_test_command() {
    const CI: &str = include_str!("../../.ci/run");
    let text = section("Set-up");
    let block = text
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("Set-up has a sh block");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- demo", "cargo test"],
        "Set-up: run the demo, run the tests"
    );
    let test_command = commands[1];
    // The same command, maybe with its output redirected or piped, but no other arguments.
    let same = |line: &str| {
        line.trim_start().strip_prefix(test_command).is_some_and(|rest| {
            let rest = rest.trim_start();
            rest.is_empty()
                || rest.starts_with('|')
                || rest.starts_with(';')
                || rest.starts_with("2>")
                || rest.starts_with('>')
        })
    };
    assert!(
        CI.lines().any(same),
        ".ci/run runs the README's test command `{test_command}`, with no other arguments"
    );
    assert!(
        subcommands(&[]).iter().any(|c| c == "demo"),
        "the demo command of Set-up exists"
    );
}
