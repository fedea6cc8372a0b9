//! What pass Culture says of the offers: their statuses (`PENDING`, `ACTIVE`, `REJECTED`…) for `/status`, and which entries can be published there.

#[allow(unused_imports)]
use super::*;

/// The status of one offer, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OfferStatus {
    /// `secutix-<productId>`.
    pub external_id: String,
    /// pass Culture offer id.
    pub offer_id: Option<u64>,
    /// Offer name as sent.
    pub name: Option<String>,
    /// `PENDING` (validation, up to 72 h), `ACTIVE`, `REJECTED`, `SOLD_OUT`, `EXPIRED`, `INACTIVE`.
    pub status: Option<String>,
    /// When the status was read.
    pub status_at: Option<DateTime<Utc>>,
    /// Dates published (past ones included).
    pub dates: usize,
    /// Dates open for booking (quota in force, not started).
    pub open_dates: usize,
    /// All future dates are at 0 because the product was withdrawn.
    pub withdrawn: bool,
    /// What keeps the offer invisible or incomplete, as of the last publication.
    pub warnings: Vec<String>,
    /// Why the image was not published.
    pub image_refused: Option<String>,
}

/// Every offer of `target` with its pass Culture status, as last read (see
/// [`PassCultureTarget::refresh_statuses`] to read them again).
pub fn offer_statuses(store: &Store, target: &str) -> Result<Vec<OfferStatus>, StoreError> {
    let now = store.clock().now();
    Ok(state::OfferStore::open(store, target)?
        .all()?
        .into_iter()
        .map(|(external_id, s)| OfferStatus {
            external_id,
            offer_id: s.offer_id,
            name: s.sent.get("name").and_then(Value::as_str).map(str::to_owned),
            status: s.status.clone(),
            status_at: s.status_at,
            dates: s.stocks.len(),
            open_dates: s
                .stocks
                .values()
                .filter(|d| d.beginning > now && d.quantity != desired::QuantitySet::Closed)
                .count(),
            withdrawn: s.withdrawn,
            warnings: s.warnings.clone(),
            image_refused: s.image.as_ref().and_then(|i| i.refused.clone()),
        })
        .collect())
}

/// What [`check_entries`] found for one selected product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryCheck {
    /// `secutix-<productId>`.
    pub external_id: String,
    /// What would keep the offer invisible or incomplete.
    pub warnings: Vec<VisibilityWarning>,
    /// Why it cannot be published at all (no category for its activity, no title, not in euros).
    pub error: Option<String>,
}

/// The visibility warnings of every selected product, from the entries in the store: what a `check`
/// command shows before (or after) publishing.
pub fn check_entries(store: &Store, settings: &PassCultureSettings) -> Result<Vec<EntryCheck>, StoreError> {
    let now = store.clock().now();
    let selection = settings.selection();
    let outbox = Outbox::open(store)?;
    let Some(view) = store.catalog()? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for record in view.products() {
        let record = record?;
        if record.removed_at.is_some() || !selection.matches(&record.product) {
            continue;
        }
        let id = crate::entry::external_id(record.product.id);
        let Some(stored) = outbox.entry(&id)? else { continue };
        let (warnings, error) = match desired::desired(&stored.entry, settings, now) {
            Ok(d) => (d.warnings, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        out.push(EntryCheck {
            external_id: id,
            warnings,
            error,
        });
    }
    Ok(out)
}
