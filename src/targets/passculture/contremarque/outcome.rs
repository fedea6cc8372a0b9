//! The outcome of a box office action as the CLI and the control API show it, and which target the box office uses.

#[allow(unused_imports)]
use super::*;

impl Done {
    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        let t = &self.token;
        match (self.action, lang) {
            (Action::Use, Lang::Fr) => format!("Contremarque {t} validée : l'entrée est enregistrée."),
            (Action::Use, Lang::En) => format!("Countermark {t} validated: the entry is recorded."),
            (Action::Keep, Lang::Fr) => {
                format!("Validation de {t} annulée : la contremarque est de nouveau à utiliser.")
            }
            (Action::Keep, Lang::En) => format!("Validation of {t} undone: the countermark can be used again."),
            (Action::Cancel, Lang::Fr) => {
                format!("Réservation {t} annulée : la place est libérée et le jeune est recrédité.")
            }
            (Action::Cancel, Lang::En) => {
                format!("Booking {t} cancelled: the place is released and the young person's credit restored.")
            }
            (Action::Booking, Lang::Fr) => format!("Contremarque {t} trouvée."),
            (Action::Booking, Lang::En) => format!("Countermark {t} found."),
        }
    }
}

/// The outcome of a box-office operation as one JSON object, the same for `secutix-sync passculture … --json`
/// and the control API (`/passculture/bookings/…`), so a box-office page and a script read one shape:
///
/// `{"ok", "action", "token", "outcome", "exit_code", "message", "lang", "booking", "detail", "retry_after_secs"}`
///
/// `outcome` is `found` (a booking looked up), `done` (used, kept or cancelled), or the refusal's code
/// ([`ContremarqueError::code`]); `exit_code` is the CLI's ([`exit_code`]); `message` is the plain-language
/// message in `lang`; `booking` (for `found`) has the booking's fields plus `date_local` (in `tz`) and
/// `status_text`; `detail` is pass Culture's own message when it gave one.
pub fn outcome_json(
    action: Action,
    token: &str,
    result: &Result<Outcome, ContremarqueError>,
    lang: Lang,
    tz: chrono_tz::Tz,
) -> serde_json::Value {
    use serde_json::{Value, json};
    let token = normalise_token(token).unwrap_or_else(|_| token.trim().chars().take(32).collect());
    let mut v = json!({
        "ok": result.is_ok(),
        "action": action,
        "token": token,
        "lang": lang,
        "booking": Value::Null,
        "detail": Value::Null,
        "retry_after_secs": Value::Null,
    });
    match result {
        Ok(Outcome::Found(b)) => {
            let mut booking = serde_json::to_value(b).unwrap_or(Value::Null);
            booking["date_local"] = json!(b.date.map(|d| d.with_timezone(&tz).to_rfc3339()));
            booking["status_text"] = json!(b.status.describe(lang));
            v["outcome"] = json!("found");
            v["exit_code"] = json!(exit_code::OK);
            v["message"] = json!(
                Done {
                    action: Action::Booking,
                    token: token.clone()
                }
                .message(lang)
            );
            v["booking"] = booking;
        }
        Ok(Outcome::Done(d)) => {
            v["outcome"] = json!("done");
            v["exit_code"] = json!(exit_code::OK);
            v["message"] = json!(d.message(lang));
        }
        Err(e) => {
            v["outcome"] = json!(e.code());
            v["exit_code"] = json!(e.exit_code());
            v["message"] = json!(e.message(lang));
            v["detail"] = json!(e.detail());
            if let ContremarqueError::RateLimited { retry_after_secs } = e {
                v["retry_after_secs"] = json!(retry_after_secs);
            }
        }
    }
    v
}

/// The `passculture` target the box office uses: `name`, or the only one.
pub fn choose_target<'a>(
    targets: &'a [crate::targets::registry::TargetConfig],
    name: Option<&str>,
) -> Result<(&'a crate::targets::registry::TargetConfig, &'a PassCultureSettings), String> {
    let candidates: Vec<&crate::targets::registry::TargetConfig> =
        targets.iter().filter(|t| t.passculture().is_some()).collect();
    let names = || {
        candidates
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match name {
        Some(name) => match candidates.iter().find(|t| t.name == name) {
            Some(t) => *t,
            None => {
                return Err(format!(
                    "no passculture target named {name:?} in the configuration (passculture targets: {})",
                    if candidates.is_empty() {
                        "none".to_owned()
                    } else {
                        names()
                    }
                ));
            }
        },
        None => match candidates.as_slice() {
            [one] => *one,
            [] => {
                return Err(
                    "the configuration has no [[targets]] with kind = \"passculture\"; see docs/passculture.md".into(),
                );
            }
            _ => {
                return Err(format!(
                    "several passculture targets ({}): choose one with --target",
                    names()
                ));
            }
        },
    };
    match target.passculture() {
        Some(settings) => Ok((target, settings)),
        None => Err(format!("target {} has no [targets.passculture] table", target.name)),
    }
}

/// Checks and normalises a token (pass Culture upper-cases it too).
pub fn normalise_token(token: &str) -> Result<String, ContremarqueError> {
    let t = token.trim();
    if t.is_empty() || t.len() > 32 || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ContremarqueError::InvalidToken);
    }
    Ok(t.to_ascii_uppercase())
}
