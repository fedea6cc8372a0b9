//! What the daemon knows of each pass Culture offer, kept in the store (tree `passculture.<target>.offers`,
//! keyed by external id): the pass Culture ids of the offer, its price categories and dates, what was last
//! sent (so a PATCH carries only what changed), the offer's status and the last visibility warnings.
//!
//! The record is rewritten after every step that pass Culture acknowledged, so a retry resumes where the
//! previous attempt stopped. Before a request whose effect we could not otherwise recognise (a creation, a
//! new start time) the record is flagged `unsure` and flushed: if the answer is lost, the next attempt first
//! reads the offer back from pass Culture (by `idsAtProvider`) instead of creating it twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{Store, StoreError};

use super::desired::QuantitySet;

/// One offer as last seen or set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfferState {
    /// pass Culture offer id.
    pub offer_id: Option<u64>,
    /// `PENDING`, `ACTIVE`, `REJECTED`… as last read.
    pub status: Option<String>,
    /// When the status was read.
    pub status_at: Option<DateTime<Utc>>,
    /// Offer fields by API name as pass Culture has them (what we sent, or read back after a lost store).
    #[serde(default)]
    pub sent: BTreeMap<String, Value>,
    /// Price categories by our `idAtProvider`.
    #[serde(default)]
    pub price_categories: BTreeMap<String, PriceCategoryState>,
    /// Dates by our `idAtProvider`.
    #[serde(default)]
    pub stocks: BTreeMap<String, StockState>,
    /// The image last published or refused.
    pub image: Option<ImageState>,
    /// A request was sent whose answer was not recorded: read the offer back before going on.
    #[serde(default)]
    pub unsure: bool,
    /// Visibility warnings of the last publication (for `status` and `check`).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The product was withdrawn (left the selection or SecuTix): every future date is at 0.
    #[serde(default)]
    pub withdrawn: bool,
}

/// A price category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceCategoryState {
    /// pass Culture id.
    pub id: u64,
    /// Label as pass Culture has it.
    pub label: String,
    /// Price in cents as pass Culture has it.
    pub price: i64,
}

/// A date (stock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockState {
    /// pass Culture stock id.
    pub id: u64,
    /// Start as pass Culture has it.
    pub beginning: DateTime<Utc>,
    /// Booking limit as pass Culture has it.
    pub booking_limit: DateTime<Utc>,
    /// pass Culture id of its price category.
    pub price_category_id: u64,
    /// The quantity we last set; after a lost store, read back: open with its total, or closed when
    /// nothing remains.
    pub quantity: QuantitySet,
}

/// The image of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageState {
    /// Source URL (from SecuTix).
    pub url: String,
    /// Why it was not published, when it was not.
    pub refused: Option<String>,
}

/// The offers tree of one target.
#[derive(Clone)]
pub struct OfferStore {
    store: Store,
    tree: sled::Tree,
}

impl OfferStore {
    /// Opens the tree of `target`.
    pub fn open(store: &Store, target: &str) -> Result<Self, StoreError> {
        let tree = store
            .db()
            .open_tree(format!("passculture.{target}.offers"))
            .map_err(|e| store.sled_error(e))?;
        Ok(Self {
            store: store.clone(),
            tree,
        })
    }

    /// The record of `external_id`.
    pub fn load(&self, external_id: &str) -> Result<Option<OfferState>, StoreError> {
        self.tree
            .get(external_id)
            .map_err(|e| self.store.sled_error(e))?
            .map(|v| crate::store::decode(&v, &format!("passculture offer {external_id}")))
            .transpose()
    }

    /// Writes the record; with `durable`, flushes it to disk before returning.
    pub fn save(&self, external_id: &str, state: &OfferState, durable: bool) -> Result<(), StoreError> {
        let bytes = crate::store::encode(state, &format!("passculture offer {external_id}"))?;
        self.tree
            .insert(external_id.as_bytes(), bytes)
            .map_err(|e| self.store.sled_error(e))?;
        if durable {
            self.tree.flush().map_err(|e| self.store.sled_error(e))?;
        }
        Ok(())
    }

    /// Every record, by external id.
    pub fn all(&self) -> Result<BTreeMap<String, OfferState>, StoreError> {
        self.tree
            .iter()
            .map(|r| {
                let (k, v) = r.map_err(|e| self.store.sled_error(e))?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let state = crate::store::decode(&v, &format!("passculture offer {key}"))?;
                Ok((key, state))
            })
            .collect()
    }
}
