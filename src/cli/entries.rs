//! `secutix-sync entries`: list entries, show one with its state on every target.

use super::*;

pub(crate) fn entries_command(sources: &Sources, action: EntriesCommand) -> anyhow::Result<ExitCode> {
    let config = load_config_without_credentials(sources)?.config;
    match action {
        EntriesCommand::Show { id, json } => {
            let (doc, _) = with_daemon_or_store(
                &config,
                async |c| c.entry(&id).await,
                |store| {
                    let outbox = secutix_sync::push::Outbox::open(store)?;
                    Ok(secutix_sync::daemon::documents::entry_document(&config, &outbox, &id)?)
                },
            )?;
            let Some(doc) = doc else {
                eprintln!(
                    "no entry {}; list them with `secutix-sync entries list`",
                    secutix_sync::daemon::documents::external_id_of(&id)
                );
                return Ok(ExitCode::from(1));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            let e = &doc["entry"];
            let title = e["title"]
                .as_object()
                .and_then(|m| m.values().next())
                .and_then(|v| v.as_str())
                .unwrap_or("");
            println!(
                "{} {title:?}: {}, {}, availability {}",
                e["external_id"].as_str().unwrap_or("?"),
                if e["published"].as_bool() == Some(true) {
                    "published"
                } else {
                    "unpublished"
                },
                if e["on_sale"].as_bool() == Some(true) {
                    "on sale"
                } else {
                    "not on sale"
                },
                e["availability"]["status"].as_str().unwrap_or("?")
            );
            println!("content hash {}", doc["content_hash"].as_str().unwrap_or("?"));
            if let Some(targets) = doc["targets"].as_object() {
                for (name, t) in targets {
                    let mut line = format!("  {name}: {}", t["state"].as_str().unwrap_or("?"));
                    if !t["acked"].is_null() {
                        line.push_str(&format!(
                            " (last acknowledged {} at {})",
                            t["acked"]["kind"].as_str().unwrap_or("?"),
                            short_time(&t["acked"]["acked_at"])
                        ));
                    }
                    if let Some(err) = t["pending"]["last_error"].as_str() {
                        line.push_str(&format!("; last error: {err}"));
                    }
                    println!("{line}");
                }
            }
            println!("{}", serde_json::to_string_pretty(e)?);
            Ok(ExitCode::SUCCESS)
        }
        EntriesCommand::List {
            query,
            availability,
            limit,
            json,
        } => {
            let q = secutix_sync::daemon::documents::EntriesQuery {
                q: query,
                availability,
                limit: Some(limit),
                offset: None,
            };
            let (doc, _) = with_daemon_or_store(
                &config,
                async |c| c.entries(&q).await,
                |store| {
                    let outbox = secutix_sync::push::Outbox::open(store)?;
                    Ok(secutix_sync::daemon::documents::entries_document(&config, &outbox, &q)?)
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            for e in doc["entries"].as_array().into_iter().flatten() {
                let title = e["title"]
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                let states: Vec<String> = e["targets"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?")))
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<20} {:<12} {title}  [{}]",
                    e["external_id"].as_str().unwrap_or("?"),
                    e["availability"]["status"].as_str().unwrap_or("?"),
                    states.join(" ")
                );
            }
            println!("{} entries", doc["total"]);
            Ok(ExitCode::SUCCESS)
        }
    }
}
