//! `secutix-sync passculture`: the box office's contremarque commands (show, use, keep, cancel).

use super::*;

pub(crate) fn passculture_command(sources: &Sources, command: PassCultureCommand) -> anyhow::Result<ExitCode> {
    use secutix_sync::targets::passculture::contremarque::{Outcome, choose_target, outcome_json};
    let (action, args) = match command {
        PassCultureCommand::Booking(a) => (Action::Booking, a),
        PassCultureCommand::Use(a) => (Action::Use, a),
        PassCultureCommand::Keep(a) => (Action::Keep, a),
        PassCultureCommand::Cancel(a) => (Action::Cancel, a),
    };
    let config_problem = |message: String| {
        eprintln!("{message}");
        Ok(ExitCode::from(exit_code::CONFIG))
    };
    let loaded = match load_config_without_credentials(sources) {
        Ok(l) => l,
        Err(e) => return config_problem(format!("{e:#}")),
    };
    let config = &loaded.config;
    let (target, settings) = match choose_target(&config.targets, args.target.as_deref()) {
        Ok(t) => t,
        Err(message) => return config_problem(message),
    };
    if let Err(e) = loaded.require_credentials(false, &[target.name.as_str()]) {
        return config_problem(e.to_string());
    }
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::Europe::Paris);
    let office = match BoxOffice::new(&target.name, settings) {
        Ok(o) => o,
        Err(e) => return config_problem(e.to_string()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let lang = args.lang;
    let result = rt.block_on(office.run(action, &args.token));
    if args.json {
        println!("{}", outcome_json(action, &args.token, &result, lang, tz));
    } else {
        match &result {
            Ok(Outcome::Found(b)) => println!("{}", b.render(&args.token.trim().to_ascii_uppercase(), lang, tz)),
            Ok(Outcome::Done(d)) => println!("{}", d.message(lang)),
            Err(e) => println!("{}", e.message(lang)),
        }
    }
    Ok(ExitCode::from(match &result {
        Ok(_) => exit_code::OK,
        Err(e) => e.exit_code(),
    }))
}
