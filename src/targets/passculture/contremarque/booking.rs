//! A booking (contremarque) as pass Culture describes it, read leniently, and the actions on it.

#[allow(unused_imports)]
use super::*;

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fr" => Ok(Lang::Fr),
            "en" => Ok(Lang::En),
            other => Err(format!("{other:?} is not a language: fr or en")),
        }
    }
}

impl Action {
    /// `booking`, `use`, `keep`, `cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Booking => "booking",
            Action::Use => "use",
            Action::Keep => "keep",
            Action::Cancel => "cancel",
        }
    }
}

impl BookingStatus {
    /// In plain words.
    pub fn describe(&self, lang: Lang) -> String {
        match (self, lang) {
            (BookingStatus::Confirmed, Lang::Fr) => "confirmée, à valider à l'entrée".into(),
            (BookingStatus::Confirmed, Lang::En) => "confirmed, to validate at the door".into(),
            (BookingStatus::Used, Lang::Fr) => "déjà validée".into(),
            (BookingStatus::Used, Lang::En) => "already used".into(),
            (BookingStatus::Cancelled, Lang::Fr) => "annulée".into(),
            (BookingStatus::Cancelled, Lang::En) => "cancelled".into(),
            (BookingStatus::Reimbursed, Lang::Fr) => "remboursée".into(),
            (BookingStatus::Reimbursed, Lang::En) => "reimbursed".into(),
            (BookingStatus::Other(s), _) => s.clone(),
        }
    }
}

impl std::fmt::Debug for Booking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No personal data in logs.
        f.debug_struct("Booking")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("offer_id", &self.offer_id)
            .field("stock_id", &self.stock_id)
            .field("quantity", &self.quantity)
            .finish_non_exhaustive()
    }
}

impl Booking {
    /// The booking as the CLI prints it.
    pub fn render(&self, token: &str, lang: Lang, tz: chrono_tz::Tz) -> String {
        let (l_status, l_offer, l_date, l_tariff, l_qty, l_name, l_until) = match lang {
            Lang::Fr => (
                "statut",
                "offre",
                "date",
                "tarif",
                "quantité",
                "nom",
                "annulable jusqu'au",
            ),
            Lang::En => (
                "status",
                "offer",
                "date",
                "tariff",
                "quantity",
                "name",
                "cancellable until",
            ),
        };
        let date = self.date.map_or("?".into(), |d| {
            d.with_timezone(&tz).format("%d/%m/%Y %H:%M").to_string()
        });
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let duo = match (self.quantity, lang) {
            (2, Lang::Fr) => " (duo)",
            (2, Lang::En) => " (duo)",
            _ => "",
        };
        let mut out = format!(
            "{token}\n  {l_status:<10}: {}\n  {l_offer:<10}: {} (#{})\n  {l_date:<10}: {date}\n  {l_tariff:<10}: {} — {}\n  \
             {l_qty:<10}: {}{duo}\n  {l_name:<10}: {}",
            self.status.describe(lang),
            self.offer_name,
            self.offer_id,
            self.tariff.as_deref().unwrap_or("?"),
            crate::targets::passculture::desired::euros(self.price_cents),
            self.quantity,
            if name.is_empty() { "?" } else { &name },
        );
        if let Some(u) = &self.cancellable_until {
            out.push_str(&format!("\n  {l_until}: {u}"));
        }
        out
    }
}
