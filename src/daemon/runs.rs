//! The runs of the jobs on the shared handle: a catalogue import, an availability poll, planning (with the public document updated for the entries it changed).

use super::summaries::{CataloguePlan, CatalogueRun, OfferStatusRefresh, PlanSummary, PollRun};
#[allow(unused_imports)]
use super::*;

impl App {
    /// Reads the pass Culture status of every published offer again, target by target; the summary per
    /// target (`updated` offers, or the `error`). A failure is logged and changes nothing else.
    pub async fn refresh_offer_statuses(&self) -> BTreeMap<String, OfferStatusRefresh> {
        let mut out = BTreeMap::new();
        for (name, pc) in self.passculture().iter() {
            let Some(reader) = &pc.statuses else { continue };
            let row = match reader.refresh_statuses().await {
                Ok(n) => OfferStatusRefresh::Updated(n as u64),
                Err(e) => {
                    tracing::warn!(target_name = %name, error = %e, "cannot read the pass Culture offer statuses; next try at the next refresh");
                    OfferStatusRefresh::Error(e.to_string())
                }
            };
            out.insert(name.clone(), row);
        }
        out
    }

    /// Builds entries for `scope`, enqueues what targets lack (everything with `full`), wakes the workers
    /// and refreshes the public document.
    pub fn plan(&self, scope: &Scope, full: bool) -> Result<PlanReport, StoreError> {
        let cfg = self.config();
        let status = availability::status_fn(AvailabilityStore::new(&self.store)?);
        let report = {
            let _one_at_a_time = self.plan_lock.lock().unwrap_or_else(|p| p.into_inner());
            let report = self.outbox.plan(
                &self.plan_targets(),
                &cfg.entries.options(),
                &status,
                scope,
                full,
                false,
            )?;
            if report.changed_entries > 0 {
                // Within the lock: each update starts from the document of the plan before.
                let previous = self.public();
                let snap = crate::public::PublicSnapshot::update(Some(&previous), &self.outbox, &report.changed)?;
                *self.public.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
            }
            report
        };
        if report.targets.values().any(|t| !t.operations.is_empty()) {
            self.plan_version.send_modify(|v| *v += 1);
        }
        Ok(report)
    }

    /// The plan of every entry for `targets`, without writing or sending anything (`push --dry-run` while
    /// the daemon runs), with the statuses the daemon plans with.
    pub fn dry_run(
        &self,
        targets: &[PlanTarget],
        options: &crate::merge::EntryOptions,
    ) -> Result<PlanReport, StoreError> {
        let status = availability::status_fn(AvailabilityStore::new(&self.store)?);
        // The same view a real plan would have: not in the middle of another plan.
        let _one_at_a_time = self.plan_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.outbox.plan(targets, options, &status, &Scope::All, false, true)
    }

    /// Makes the push workers look at their outboxes again (after a replay).
    pub fn wake_workers(&self) {
        self.plan_version.send_modify(|v| *v += 1);
    }

    /// One catalogue import; every entry is planned after it (here when availability is off, else after
    /// the poll the availability loop runs at once).
    pub async fn run_catalogue(&self, force: bool) -> Result<CatalogueRun, RunFailure> {
        let cfg = self.config();
        let client = self.client();
        let report = run_import(&client, &self.store, &cfg.catalogue, ImportOptions { force })
            .await
            .map_err(|e| RunFailure::from_import(&e))?;
        let mut summary = CatalogueRun {
            import: report,
            plan: None,
        };
        if matches!(
            summary.import.outcome,
            ImportOutcome::Success | ImportOutcome::Unchanged
        ) {
            self.catalogue_version.send_modify(|v| *v += 1);
            summary.plan = Some(if cfg.availability.enabled {
                // The availability loop polls at once and then plans every entry: one plan, with fresh
                // indicators, instead of pushing new entries as "unknown" and again a minute later.
                CataloguePlan::Deferred(CataloguePlan::AFTER_THE_POLL.to_owned())
            } else {
                CataloguePlan::Planned(PlanSummary::from(&self.plan(&Scope::All, false)?))
            });
        }
        Ok(summary)
    }

    /// One availability poll, or one per product of `products`. Products whose indicator changed are
    /// planned at once; the entries of `products` are also re-sent to every target. With `plan_all` (the
    /// first poll after an import) every entry is planned, whether the poll succeeded or not.
    pub async fn run_availability(&self, products: &[Id], plan_all: bool) -> Result<PollRun, RunFailure> {
        let result = self.poll_and_plan_changed(products, plan_all).await;
        if !plan_all {
            return result;
        }
        let plan = PlanSummary::from(&self.plan(&Scope::All, false)?);
        result.map(|summary| PollRun {
            plan: Some(plan),
            ..summary
        })
    }

    pub(super) async fn poll_and_plan_changed(&self, products: &[Id], plan_all: bool) -> Result<PollRun, RunFailure> {
        let no_catalogue = || RunFailure {
            message: "no catalogue yet: the first import has not succeeded".into(),
            retry: Retry::Schedule,
        };
        let Some(view) = self.store.catalog()? else {
            return Err(no_catalogue());
        };
        for &id in products {
            if view.product(id)?.is_none() {
                return Err(RunFailure {
                    message: format!(
                        "product {id} is not in the catalogue in force; check the id (`secutix-sync entries list`), \
                         or import first (`secutix-sync resync --catalogue`)"
                    ),
                    retry: Retry::Schedule,
                });
            }
        }
        let cfg = self.config();
        let poller = Poller::new(self.client(), self.store.clone(), cfg.availability.clone())?
            .with_progress(self.availability.progress_sink());
        let scopes: Vec<Option<Id>> = if products.is_empty() {
            vec![None]
        } else {
            products.iter().copied().map(Some).collect()
        };
        let mut report: Option<crate::availability::PollReport> = None;
        for product in scopes {
            let r = poller
                .poll_once(PollOptions { product })
                .await
                .map_err(|e| RunFailure::backoff(e.to_string()))?;
            report = Some(match report {
                None => r,
                Some(mut acc) => {
                    acc.calls += r.calls;
                    acc.fetched.extend(r.fetched);
                    acc.stale.extend(r.stale);
                    acc.pending = r.pending;
                    acc.changes.extend(r.changes);
                    acc.dirty.extend(r.dirty);
                    acc.month_calls = r.month_calls;
                    acc.next_poll_in = r.next_poll_in;
                    acc.error = acc.error.or(r.error);
                    acc
                }
            });
        }
        let Some(report) = report else {
            return Err(RunFailure::backoff("no poll ran"));
        };
        let avail = poller.availability();
        let marks = avail.dirty_products()?;
        let mut summary = PollRun {
            calls: report.calls,
            fetched: report.fetched.len() as u64,
            stale: report.stale.len() as u64,
            pending: report.pending as u64,
            changes: report.changes.len() as u64,
            dirty: report.dirty.len() as u64,
            month_calls: report.month_calls,
            next_poll_in_secs: report.next_poll_in.as_secs(),
            error: report.error.clone(),
            ..PollRun::default()
        };
        if plan_all {
            // The caller plans every entry, these included.
            avail.clear_dirty(&marks)?;
        } else if !marks.is_empty() {
            let ids: Vec<Id> = marks.iter().map(|m| m.product_id).collect();
            let plan = self.plan(&Scope::Products(ids), false)?;
            avail.clear_dirty(&marks)?;
            summary.plan = Some(PlanSummary::from(&plan));
        }
        if !products.is_empty() {
            let plan = self.plan(&Scope::Products(products.to_vec()), true)?;
            summary.products = products.to_vec();
            summary.product_plan = Some(PlanSummary::from(&plan));
        }
        let next = self.clock.now() + chrono::Duration::from_std(report.next_poll_in).unwrap_or_default();
        summary.next_poll_at = Some(next);
        match report.error {
            Some(e) => Err(RunFailure {
                message: e,
                retry: Retry::At(next),
            }),
            None => Ok(summary),
        }
    }
}
