//! What a box office call can fail with, in the box office's language, and how pass Culture's answers map to it.

#[allow(unused_imports)]
use super::*;

impl ContremarqueError {
    /// The outcome code of the JSON documents (`--json`, the control API): the variant in snake case.
    pub fn code(&self) -> &'static str {
        use ContremarqueError::*;
        match self {
            InvalidToken => "invalid_token",
            NotFound => "not_found",
            AlreadyUsed => "already_used",
            Cancelled => "cancelled",
            Reimbursed => "reimbursed",
            TooEarly { .. } => "too_early",
            NotUsed => "not_used",
            HasValidationCodes => "has_validation_codes",
            TooLate => "too_late",
            CancelFailed { .. } => "cancel_failed",
            Refused { .. } => "refused",
            AuthRefused { .. } => "auth_refused",
            RateLimited { .. } => "rate_limited",
            Unavailable { .. } => "unavailable",
        }
    }

    /// pass Culture's own words, when it gave some.
    pub fn detail(&self) -> Option<&str> {
        use ContremarqueError::*;
        match self {
            TooEarly { detail } | CancelFailed { detail } | Refused { detail, .. } | AuthRefused { detail, .. } => {
                Some(detail)
            }
            Unavailable { detail } => Some(detail),
            _ => None,
        }
    }

    /// The exit code of the CLI.
    pub fn exit_code(&self) -> u8 {
        use ContremarqueError::*;
        match self {
            InvalidToken => exit_code::INVALID_TOKEN,
            NotFound => exit_code::NOT_FOUND,
            AlreadyUsed => exit_code::ALREADY_USED,
            Cancelled => exit_code::CANCELLED,
            Reimbursed => exit_code::REIMBURSED,
            TooEarly { .. } => exit_code::TOO_EARLY,
            NotUsed => exit_code::NOT_USED,
            TooLate => exit_code::TOO_LATE,
            HasValidationCodes | CancelFailed { .. } | Refused { .. } => exit_code::REFUSED,
            AuthRefused { .. } => exit_code::AUTH,
            RateLimited { .. } | Unavailable { .. } => exit_code::UNAVAILABLE,
        }
    }

    /// The message in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        use ContremarqueError::*;
        if lang == Lang::En {
            return self.to_string();
        }
        match self {
            InvalidToken => {
                "Ce n'est pas un code de contremarque : lettres et chiffres uniquement (6 en général).".into()
            }
            NotFound => "Contremarque introuvable : vérifiez le code ; elle concerne peut-être un autre lieu.".into(),
            AlreadyUsed => "Déjà utilisée : cette contremarque a déjà été validée (ou automatiquement 48 h après \
                            l'événement)."
                .into(),
            Cancelled => "Réservation annulée : cette contremarque ne donne pas accès à l'événement.".into(),
            Reimbursed => "Réservation déjà remboursée par pass Culture : elle ne peut plus être modifiée.".into(),
            TooEarly { detail } => {
                format!("Trop tôt pour valider : le jeune peut encore annuler cette réservation ({detail}).")
            }
            NotUsed => "Cette contremarque n'a pas été validée : il n'y a rien à annuler.".into(),
            HasValidationCodes => "Cette réservation a des codes de validation (billets) : elle ne peut pas revenir \
                                   à « non utilisée »."
                .into(),
            TooLate => "Trop tard pour annuler : un lieu peut annuler jusqu'à 48 h avant l'événement.".into(),
            CancelFailed { detail } => format!(
                "pass Culture n'a pas pu annuler la réservation ({detail}) : réessayez ou contactez le support \
                 pass Culture."
            ),
            Refused { status, detail } => format!("pass Culture refuse (HTTP {status} : {detail})."),
            AuthRefused { status, detail } => format!(
                "pass Culture refuse la clé d'API (HTTP {status} : {detail}) : vérifiez \
                 targets.passculture.api_key_file et l'environnement (intégration ou production)."
            ),
            RateLimited { retry_after_secs } => {
                format!("Trop de requêtes vers pass Culture : réessayez dans {retry_after_secs} s.")
            }
            Unavailable { detail } => format!("pass Culture ne répond pas ({detail}) : réessayez dans un instant."),
        }
    }
}

/// The first `(key, message)` of a pass Culture error body (`{"booking": "…"}`, `{"global": ["…"]}`).
pub(super) fn first_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some((k, m)) = v.as_object().and_then(|o| o.iter().next()) {
        let text = match m {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        return (k.clone(), text);
    }
    (String::new(), crate::http::snippet(body))
}

/// Maps a non-2xx answer of `action` to its outcome (every status and body of pass Culture's documentation,
/// English and the older French wordings).
pub fn classify(action: Action, status: u16, retry_after: Option<Duration>, body: &[u8]) -> ContremarqueError {
    use ContremarqueError::*;
    let (key, detail) = first_error(body);
    let t = detail.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    match status {
        404 => NotFound,
        410 if has(&["cancel", "annul"]) => Cancelled,
        410 => AlreadyUsed,
        403 if key == "payment" || has(&["reimburs", "rembours"]) => Reimbursed,
        403 if has(&["not been used", "pas été utilisée", "pas été validée"]) => NotUsed,
        403 if has(&["validation code"]) => HasValidationCodes,
        403 if has(&[
            "cannot be cancelled",
            "cannot be canceled",
            "plus être annulée",
            "impossible d'annuler",
        ]) =>
        {
            TooLate
        }
        403 if key == "booking" => TooEarly { detail },
        401 | 403 => AuthRefused { status, detail },
        400 if action == Action::Cancel => CancelFailed { detail },
        429 => RateLimited {
            retry_after_secs: retry_after
                .unwrap_or(crate::targets::passculture::api::DEFAULT_RATE_LIMIT_WAIT)
                .as_secs(),
        },
        408 | 500.. => Unavailable {
            detail: format!("HTTP {status}"),
        },
        _ => Refused { status, detail },
    }
}
