//! `secutix-sync entries`: list entries, show one with its state on every target.

use super::*;

pub(crate) fn entries_command(sources: &Sources, action: EntriesCommand) -> anyhow::Result<ExitCode> {
    let config = load_config_without_credentials(sources)?.config;
    let rt = runtime()?;
    // Read-only: the output is the same whoever answers, so the everyday "no daemon" goes unsaid.
    let operator = operator(&config, &rt, None)?;
    match action {
        EntriesCommand::Show { id, json } => {
            let Some(doc) = rt.block_on(operator.entry(&id))? else {
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
            let e = &doc.entry;
            let title = e.title.0.values().next().map_or("", String::as_str);
            println!(
                "{} {title:?}: {}, {}, availability {}",
                e.external_id,
                if e.published { "published" } else { "unpublished" },
                if e.on_sale { "on sale" } else { "not on sale" },
                e.availability.status.as_str()
            );
            println!("content hash {}", doc.content_hash);
            for (name, t) in &doc.targets {
                let mut line = format!("  {name}: {}", t.state.map_or("?", |s| s.as_str()));
                if let Some(acked) = &t.acked {
                    line.push_str(&format!(
                        " (last acknowledged {} at {})",
                        acked.kind.as_str(),
                        short_utc(Some(acked.acked_at))
                    ));
                }
                if let Some(err) = t.pending.as_ref().and_then(|p| p.last_error.as_deref()) {
                    line.push_str(&format!("; last error: {err}"));
                }
                println!("{line}");
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
            let doc = rt.block_on(operator.entries(&q))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            for e in &doc.entries {
                let title = e.title.0.values().next().map_or("", String::as_str);
                let states: Vec<String> = e.targets.iter().map(|(k, v)| format!("{k}={}", v.as_str())).collect();
                println!(
                    "{:<20} {:<12} {title}  [{}]",
                    e.external_id,
                    e.availability.status.as_str(),
                    states.join(" ")
                );
            }
            println!("{} entries", doc.total);
            Ok(ExitCode::SUCCESS)
        }
    }
}
