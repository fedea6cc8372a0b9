//! One catalogue import, end to end: POS configuration, catalogue fetch streamed into a new generation,
//! finish (compare, tombstones, shrink guard, switch), and a report in the import history.
//!
//! Whatever happens, a failed or refused import leaves the catalogue in force untouched (DESIGN §4.1) and
//! is recorded with its reason, so `status` can show it. That includes a degraded POS configuration (no
//! point of sale id, no or an unknown time zone: [`check_pos_config`]): the one in force stays.

use std::time::Duration;

use serde::Deserialize;

use crate::secutix::settings::CatalogueMethod;
use crate::secutix::wire::ConvertCtx;
use crate::secutix::{CallError, CatalogueRequest, Client, RetryPolicy};
use crate::store::{FinishError, FinishOptions, ImportCounts, ImportOutcome, ImportReport, Store, StoreError};

/// Options of one import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Bypass the shrink guard and re-import even an identical response.
    pub force: bool,
}

/// Why an import did not produce a new catalogue.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// SecuTix could not be called or answered badly; the message adds that the catalogue in force is
    /// unchanged and, for an answer the daemon cannot read, what to check.
    #[error("{}", call_message(.0))]
    Call(#[from] CallError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shrink guard refused the catalogue.
    #[error(transparent)]
    Refused(crate::store::ShrinkRefused),
    /// getPOSConfig answered, but without what the daemon cannot do without (see [`check_pos_config`]).
    #[error(
        "getPOSConfig answered with {0}; the import was refused and the catalogue and point of sale in force are \
         unchanged. This is usually temporary on SecuTix's side (the daemon tries again); if it persists, check \
         secutix.operator's point of sale in SecuTix and send this message to SecuTix support"
    )]
    PosConfig(String),
}

/// The message of a failed SecuTix call, as an import reports it.
fn call_message(e: &CallError) -> String {
    use crate::secutix::parse::ParseError;
    let bad_answer = matches!(
        e,
        CallError::Parse(ParseError::Malformed { .. } | ParseError::Fault { .. } | ParseError::TooDeep { .. })
            | CallError::UnexpectedBody { .. }
            | CallError::Status { .. }
            | CallError::Http { .. }
    );
    match e {
        // Says so already.
        CallError::InProgressDeadline { .. } => e.to_string(),
        _ if bad_answer => format!(
            "{e}; the catalogue in force is unchanged. If this persists, check secutix.base_url (or \
             secutix.environment) and SecuTix's service status, then send this message to SecuTix support"
        ),
        _ => format!("{e}; the catalogue in force is unchanged"),
    }
}

impl From<FinishError> for ImportError {
    fn from(e: FinishError) -> Self {
        match e {
            FinishError::Refused(r) => ImportError::Refused(r),
            FinishError::Store(s) => ImportError::Store(s),
        }
    }
}

impl ImportError {
    /// The history outcome for this error.
    pub fn outcome(&self) -> ImportOutcome {
        match self {
            ImportError::Refused(_) => ImportOutcome::Refused,
            _ => ImportOutcome::Failed,
        }
    }
}

/// The catalogue request built from the configuration.
pub fn catalogue_request(cfg: &CatalogueConfig, ctx: ConvertCtx) -> CatalogueRequest {
    let single = |v: &[String]| {
        if v.len() == 1 { Some(v[0].clone()) } else { None }
    };
    CatalogueRequest {
        method: cfg.method,
        season_code: single(&cfg.season_codes),
        product_code: single(&cfg.product_codes),
        scope: Some(cfg.scope.clone()).filter(|s| !s.is_empty()),
        backoff: cfg.in_progress_backoff,
        max_backoff: cfg.in_progress_max_backoff,
        deadline: cfg.deadline,
        min_interval: cfg.min_interval,
        ctx,
    }
}

/// Runs one import and records it in the history. Returns the report (also for `Unchanged`), or the error
/// after recording it.
pub async fn run_import(
    client: &Client,
    store: &Store,
    cfg: &CatalogueConfig,
    opts: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let started_at = store.clock().now();
    let id = store.next_import_id()?;
    let mut report = ImportReport {
        id,
        started_at,
        finished_at: started_at,
        outcome: ImportOutcome::Failed,
        error: None,
        counts: ImportCounts::default(),
        bytes: 0,
        calls: 0,
        generation: store.generation()?,
        forced: opts.force,
        flagged: Vec::new(),
    };
    store.import_started(&report)?;
    // While SecuTix fails, the mark of the running import carries the last error: if the process stops
    // before the import ends (killed, a shutdown past the grace), the history still says why it was waiting.
    let mut retrying = client.retrying();
    retrying.borrow_and_update();
    let mut mark = report.clone();
    let result = {
        let work = import_inner(client, store, cfg, opts, &mut report);
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => break r,
                Ok(()) = retrying.changed() => {
                    let last = retrying.borrow_and_update().clone();
                    if let Some((call, message)) = last
                        && call.starts_with("catalogService/")
                    {
                        mark.error = Some(message);
                        if let Err(e) = store.import_started(&mark) {
                            tracing::warn!(error = %e, "cannot record the import's last error in the store");
                        }
                    }
                }
            }
        }
    };
    report.finished_at = store.clock().now();
    match &result {
        Ok(()) => {}
        Err(e) => {
            report.outcome = e.outcome();
            report.error = Some(e.to_string());
            report.generation = store.generation()?;
        }
    }
    store.record_import(&report)?;
    match result {
        Ok(()) => {
            tracing::info!(
                outcome = report.outcome.as_str(),
                products = report.counts.products,
                added = report.counts.added,
                changed = report.counts.changed,
                removed = report.counts.removed,
                unchanged = report.counts.unchanged,
                bytes = report.bytes,
                calls = report.calls,
                "catalogue import finished"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::error!(error = %e, "catalogue import failed; the previous catalogue stays in force");
            Err(e)
        }
    }
}

/// Accepts a POS configuration only when it has what the daemon cannot do without: the point of sale id
/// (`posId`, the `pointOfSalesId` of every availability call) and the venue's time zone
/// (`organizationTimeZone`, an IANA name: every time in every entry depends on it). A degraded answer
/// (`{"posConfigData": {}}`) would otherwise stop availability and shift every performance to UTC, so it is
/// refused like a bad catalogue. Returns the time zone.
pub fn check_pos_config(pos: &crate::catalog::PosConfig) -> Result<chrono_tz::Tz, ImportError> {
    let mut missing = Vec::new();
    if pos.pos_id.is_none() {
        missing.push("posConfigData.posId");
    }
    let zone = pos.time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty());
    if zone.is_none() {
        missing.push("posConfigData.organizationTimeZone");
    }
    if !missing.is_empty() {
        return Err(ImportError::PosConfig(format!("no {}", missing.join(" and no "))));
    }
    let zone = zone.unwrap_or_default();
    zone.parse::<chrono_tz::Tz>().map_err(|_| {
        let shown: String = crate::text::truncate(zone, 60)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        ImportError::PosConfig(format!(
            "the time zone {shown:?} (posConfigData.organizationTimeZone), which is not an IANA time zone such as \
             \"Europe/Paris\""
        ))
    })
}

async fn import_inner(
    client: &Client,
    store: &Store,
    cfg: &CatalogueConfig,
    opts: ImportOptions,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let mut pos = client.get_pos_config(RetryPolicy::within(cfg.deadline)).await?;
    report.calls += 1;
    let time_zone = check_pos_config(&pos)?;
    // Stored as read, so that every later reader parses the same name.
    pos.time_zone = Some(time_zone.name().to_owned());
    store.set_time_zone(time_zone);
    let current = store.catalog()?;
    let known_hash = if opts.force {
        None
    } else {
        current
            .as_ref()
            .and_then(|c| c.meta.body_hash.as_deref())
            .and_then(|h| hex::decode(h).ok())
            .and_then(|v| v.try_into().ok())
    };
    let txn = store.begin_import(&cfg.product_families)?;
    let req = catalogue_request(cfg, ConvertCtx { time_zone });
    let (txn, fetch) = match client.fetch_catalogue(&req, txn, known_hash).await {
        Ok(x) => x,
        Err(e) => {
            // The transaction was moved into the fetch; its trees are dropped at the next import or open.
            return Err(e.into());
        }
    };
    report.calls += fetch.calls;
    report.bytes = fetch.bytes;
    if fetch.unchanged {
        txn.abort();
        report.outcome = ImportOutcome::Unchanged;
        if let Some(c) = &current {
            report.counts.products = c.meta.live;
            report.counts.unchanged = c.meta.live;
            report.counts.seasons = c.meta.seasons;
        }
        return Ok(());
    }
    let counts = txn.finish(&FinishOptions {
        force: opts.force,
        shrink_guard_ratio: cfg.shrink_guard_ratio,
        season_codes: cfg.season_codes.clone(),
        product_codes: cfg.product_codes.clone(),
        pos: Some(pos),
        body_hash: Some(fetch.body_hash),
    })?;
    report.counts = counts;
    let implausible = fetch.envelope.implausible;
    if implausible.count > 0 {
        tracing::warn!(
            values = implausible.count,
            first = %implausible.examples.first().map_or("", String::as_str),
            "values that cannot be right were left out of the catalogue (the import report lists them)"
        );
    }
    report.counts.flagged = implausible.count;
    report.flagged = implausible.examples;
    report.outcome = ImportOutcome::Success;
    report.generation = store.generation()?;
    Ok(())
}
/// `[catalogue]`
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogueConfig {
    /// getCatalogDetailed (DTOs) or getCatalog (the catalogue as an XML string).
    pub method: CatalogueMethod,
    /// Keep only these season codes (empty = all). One code is also sent as `seasonCode`.
    pub season_codes: Vec<String>,
    /// Keep only these product codes (empty = all). One code is also sent as `productCode`.
    pub product_codes: Vec<String>,
    /// Product families to keep (`productFamilyType`).
    pub product_families: Vec<String>,
    /// `scope` parameter of getCatalogDetailed (e.g. `EXTENDED`); empty = not sent.
    pub scope: String,
    /// First wait after `statusCode: in_progress`; doubles up to `in_progress_max_backoff`.
    #[serde(with = "humantime_serde")]
    pub in_progress_backoff: Duration,
    /// Longest wait between two in_progress re-calls.
    #[serde(with = "humantime_serde")]
    pub in_progress_max_backoff: Duration,
    /// Overall deadline of one import (all re-calls and back-offs included).
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Minimum time between two fresh catalogue calls (SecuTix: one per 10 minutes), kept across restarts.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// Refuse an import that would remove more than this share of the live products (or all of them).
    pub shrink_guard_ratio: f64,
}

impl CatalogueConfig {
    /// Checks `[catalogue]`: each problem is reported to `bad` with its key.
    pub fn validate(&self, bad: &mut dyn FnMut(&str, String)) {
        let c = self;
        for (key, d) in [
            ("catalogue.in_progress_backoff", c.in_progress_backoff),
            ("catalogue.in_progress_max_backoff", c.in_progress_max_backoff),
            ("catalogue.deadline", c.deadline),
        ] {
            if d.is_zero() {
                bad(key, "must be longer than 0s (e.g. \"30s\", \"10m\")".into());
            }
        }
        if !(c.shrink_guard_ratio > 0.0 && c.shrink_guard_ratio <= 1.0) {
            bad(
                "catalogue.shrink_guard_ratio",
                format!("{} is not a share in (0, 1], e.g. 0.5", c.shrink_guard_ratio),
            );
        }
        if c.product_families.is_empty() {
            bad(
                "catalogue.product_families",
                "is empty: nothing would be imported; the usual value is [\"SINGLE_ENTRY\"]".into(),
            );
        }
        if c.in_progress_max_backoff < c.in_progress_backoff {
            bad(
                "catalogue.in_progress_max_backoff",
                "is shorter than catalogue.in_progress_backoff".into(),
            );
        }
    }
}
