//! What each run of a job did, as typed documents: the daemon records them in its jobs' state, `/status`
//! serialises them and the CLI reads them back (`resync --wait`, `status`, `run --once`). One type per job, so
//! a reader never looks a field up by name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::Id;
use crate::push::{DrainReport, PlanReport};
use crate::store::{ImportOutcome, ImportReport};

/// The counts of a plan for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCounts {
    /// Entries the target never acknowledged.
    pub create: u64,
    /// Entries whose content changed.
    pub update: u64,
    /// Tombstones to unpublish.
    pub unpublish: u64,
    /// Tombstones to delete.
    pub delete: u64,
    /// Entries already up to date.
    pub unchanged: u64,
    /// Skipped: their current version is a dead letter.
    pub dead: u64,
    /// Skipped: an operator dropped the dead letter of their current version.
    pub dropped: u64,
    /// Skipped: the target's filter does not want them.
    pub skipped: u64,
}

impl PlanCounts {
    /// Operations queued: creations, updates, unpublications and deletions.
    pub fn operations(&self) -> u64 {
        self.create + self.update + self.unpublish + self.delete
    }
}

/// A short account of a plan: entries built and changed, counts per target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Entries built.
    pub entries: u64,
    /// Entries whose content changed since the last plan.
    pub changed: u64,
    /// Per target.
    pub targets: BTreeMap<String, PlanCounts>,
}

impl From<&PlanReport> for PlanSummary {
    fn from(p: &PlanReport) -> Self {
        Self {
            entries: p.entries,
            changed: p.changed_entries,
            targets: p
                .targets
                .iter()
                .map(|(name, t)| {
                    let counts = PlanCounts {
                        create: t.create,
                        update: t.update,
                        unpublish: t.unpublish,
                        delete: t.delete,
                        unchanged: t.unchanged,
                        dead: t.dead,
                        dropped: t.dropped,
                        skipped: t.skipped,
                    };
                    (name.clone(), counts)
                })
                .collect(),
        }
    }
}

impl PlanSummary {
    /// Operations queued for every target.
    pub fn operations(&self) -> u64 {
        self.targets.values().map(PlanCounts::operations).sum()
    }

    /// `"; 12 entries built, 3 changed: 4 operations queued for the targets"`.
    pub fn clause(&self) -> String {
        format!(
            "; {} entries built, {} changed: {} operations queued for the targets",
            self.entries,
            self.changed,
            self.operations()
        )
    }
}

/// When the entries of an import were planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CataloguePlan {
    /// Planned by the import itself (availability polling is off).
    Planned(PlanSummary),
    /// Left to the availability poll that follows the import, said in words (`"after the availability poll
    /// that follows the import"`).
    Deferred(String),
}

impl CataloguePlan {
    /// The words of a plan left to the poll that follows the import.
    pub const AFTER_THE_POLL: &str = "after the availability poll that follows the import";

    /// `"; 12 entries built…"` or `"; entries planned after the availability poll…"`.
    pub fn clause(&self) -> String {
        match self {
            CataloguePlan::Planned(p) => p.clause(),
            CataloguePlan::Deferred(later) => format!("; entries planned {later}"),
        }
    }
}

/// A catalogue run: the import's report, and the plan that followed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogueRun {
    /// The import (also kept in the store's history).
    #[serde(flatten)]
    pub import: ImportReport,
    /// The plan of its entries (none when the import changed nothing in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<CataloguePlan>,
}

impl CatalogueRun {
    /// `"import #3: 120 products (added 2, changed 5, removed 0); …"`.
    pub fn line(&self) -> String {
        let c = &self.import.counts;
        let head = if self.import.outcome == ImportOutcome::Unchanged {
            format!("catalogue unchanged ({} products)", c.products)
        } else {
            format!(
                "import #{}: {} products (added {}, changed {}, removed {})",
                self.import.id, c.products, c.added, c.changed, c.removed
            )
        };
        format!(
            "{head}{}",
            self.plan.as_ref().map(CataloguePlan::clause).unwrap_or_default()
        )
    }
}

/// An availability run: what the poll did, and the plans of the products whose indicators changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRun {
    /// SecuTix calls made, failed ones included.
    pub calls: u64,
    /// Products fetched.
    pub fetched: u64,
    /// Products that could not be refreshed (their values kept, marked stale).
    pub stale: u64,
    /// Products still waiting for a fetch.
    pub pending: u64,
    /// Indicator changes.
    pub changes: u64,
    /// Products whose entries needed planning.
    pub dirty: u64,
    /// All SecuTix calls this month after the poll.
    pub month_calls: u64,
    /// Seconds until the next poll the budget allows.
    pub next_poll_in_secs: u64,
    /// When the next poll comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_poll_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What went wrong, if anything (the poll still kept what it fetched).
    pub error: Option<String>,
    /// The plan of the products whose indicators changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSummary>,
    /// The products this run was asked for (`resync --product`); empty = every product.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<Id>,
    /// The plan re-sending those products' entries to every target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_plan: Option<PlanSummary>,
}

impl PollRun {
    /// `"12 SecuTix calls, 10 products fetched, 2 indicator changes; …"`.
    pub fn line(&self) -> String {
        let clause = |p: &Option<PlanSummary>| p.as_ref().map(PlanSummary::clause).unwrap_or_default();
        format!(
            "{} SecuTix calls, {} products fetched, {} indicator changes{}{}",
            self.calls,
            self.fetched,
            self.changes,
            clause(&self.plan),
            clause(&self.product_plan)
        )
    }
}

/// The pass Culture offer statuses read again for one target by a scheduled refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatusRefresh {
    /// Offers whose status was read.
    Updated(u64),
    /// Why they could not be read (the next refresh tries again).
    Error(String),
}

/// A refresh run: the plan of every entry, and on scheduled runs the pass Culture statuses read again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRun {
    /// The plan.
    #[serde(flatten)]
    pub plan: PlanSummary,
    /// Per `passculture` target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passculture_statuses: Option<BTreeMap<String, OfferStatusRefresh>>,
}

impl RefreshRun {
    /// `"12 entries built, 3 changed: 4 operations queued for the targets"`.
    pub fn line(&self) -> String {
        self.plan.clause().trim_start_matches("; ").to_owned()
    }
}

/// A run another one asked for when it ended (`resync all`: the poll after the import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Its job (`availability`).
    pub job: String,
    /// Its run number.
    pub run: u64,
}

/// What one target's push did in `run --once`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OncePush {
    /// The drain's report.
    Drained {
        /// The drain.
        #[serde(flatten)]
        report: DrainReport,
        /// Operations in the outbox when the push began.
        to_send: u64,
        /// Of those, how many were already waiting before this cycle.
        waiting_before: u64,
    },
    /// Why the target could not be drained.
    Failed {
        /// The error.
        error: String,
    },
}

/// A step of `run --once` that ran or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OnceStep<T> {
    /// It ran.
    Ran(T),
    /// It failed.
    Failed {
        /// The error.
        error: String,
    },
}

/// `run --once`: import, availability poll, plan and push, each as it went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnceReport {
    /// The import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<OnceStep<CatalogueRun>>,
    /// The availability poll (none without a catalogue, or with polling off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<OnceStep<PollRun>>,
    /// The plan of every entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSummary>,
    /// Per target.
    #[serde(default)]
    pub push: BTreeMap<String, OncePush>,
    /// What failed, in words (empty when every step succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::jobs::Finished;
    use serde_json::json;

    fn run(summary: serde_json::Value) -> Finished<CatalogueRun> {
        let mut import = json!({"id": 3, "started_at": "2026-03-01T05:30:00Z", "finished_at": "2026-03-01T05:31:00Z",
            "outcome": "success", "error": null, "bytes": 1000, "calls": 2, "generation": 3, "forced": false,
            "counts": {"seasons": 1, "products": 24, "performances": 80, "added": 2, "changed": 1, "removed": 0,
                       "unchanged": 21, "skipped": 0, "duplicates": 0, "retained_performances": 0}});
        if let (Some(i), Some(s)) = (import.as_object_mut(), summary.as_object()) {
            i.extend(s.clone());
        }
        serde_json::from_value(json!({"id": 3, "started_at": "2026-03-01T05:30:00Z",
            "finished_at": "2026-03-01T05:31:00Z", "trigger": {"kind": "scheduled"}, "ok": true,
            "summary": import, "error": null}))
        .expect("a finished catalogue run as /status shows it")
    }

    #[test]
    fn summary_lines_name_the_counts_or_the_error() {
        let last = run(
            json!({"plan": {"entries": 24, "changed": 3, "targets": {"website": {"create": 2, "update": 1,
            "unpublish": 0, "delete": 0, "unchanged": 21, "dead": 0, "dropped": 0, "skipped": 0}}}}),
        );
        assert_eq!(
            last.line(CatalogueRun::line),
            "import #3: 24 products (added 2, changed 1, removed 0); 24 entries built, 3 changed: 3 operations \
             queued for the targets"
        );
        let deferred = run(
            json!({"id": 4, "counts": {"seasons": 1, "products": 24, "performances": 80, "added": 0,
            "changed": 1, "removed": 0, "unchanged": 23, "skipped": 0, "duplicates": 0,
            "retained_performances": 0}, "plan": CataloguePlan::AFTER_THE_POLL}),
        );
        assert_eq!(
            deferred.line(CatalogueRun::line),
            "import #4: 24 products (added 0, changed 1, removed 0); entries planned after the availability poll \
             that follows the import"
        );
        let failed = Finished::<CatalogueRun> {
            ok: false,
            summary: None,
            error: Some("SecuTix refused the credentials".into()),
            ..last
        };
        assert_eq!(failed.line(CatalogueRun::line), "SecuTix refused the credentials");
    }

    #[test]
    fn a_run_summary_reads_back_as_it_was_written() {
        let poll = PollRun {
            calls: 12,
            fetched: 10,
            changes: 2,
            next_poll_at: Some(chrono::DateTime::UNIX_EPOCH),
            plan: Some(PlanSummary {
                entries: 5,
                changed: 2,
                targets: [(
                    "website".to_owned(),
                    PlanCounts {
                        update: 2,
                        ..PlanCounts::default()
                    },
                )]
                .into(),
            }),
            products: vec![7],
            ..PollRun::default()
        };
        let back: PollRun = serde_json::from_value(serde_json::to_value(&poll).expect("serialises")).expect("reads");
        assert_eq!(back, poll);
        assert_eq!(
            poll.line(),
            "12 SecuTix calls, 10 products fetched, 2 indicator changes; 5 entries built, 2 changed: 2 operations \
             queued for the targets"
        );
        let once = OnceReport {
            availability: Some(OnceStep::Failed {
                error: "SecuTix did not answer".into(),
            }),
            push: [(
                "website".to_owned(),
                OncePush::Failed {
                    error: "refused".into(),
                },
            )]
            .into(),
            failed: vec!["availability: SecuTix did not answer".into()],
            ..OnceReport::default()
        };
        let back: OnceReport = serde_json::from_value(serde_json::to_value(&once).expect("serialises")).expect("reads");
        assert_eq!(back, once);
    }
}
