//! Import history: each import's report, the one interrupted by a crash, the last good one.

#[allow(unused_imports)]
use super::*;

impl Store {
    /// Next import sequence number.
    pub fn next_import_id(&self) -> Result<u64, StoreError> {
        let v = self
            .meta
            .update_and_fetch(KEY_IMPORT_SEQ, |old| {
                let n = old.and_then(|o| o.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0) + 1;
                Some(n.to_be_bytes().to_vec())
            })
            .map_err(self.err())?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(1))
    }

    /// Marks `report`'s import as under way, durably, before it calls SecuTix: if the process stops before
    /// [`Store::record_import`], the next open records it as interrupted (see
    /// [`Store::recover_interrupted_import`]), so the history never loses a run.
    pub fn import_started(&self, report: &ImportReport) -> Result<(), StoreError> {
        self.meta
            .insert(KEY_IMPORT_RUNNING, encode(report, "import.running")?)
            .map_err(self.err())?;
        self.flush()
    }

    /// Records, at open, the import a stopped process left unfinished (killed, crashed, power cut). Its
    /// report says what is in force: when the catalogue switch happened before the stop, the import
    /// succeeded and its report is rebuilt from the new generation (the counts of changes are lost);
    /// otherwise it failed and the catalogue it started from stayed in force.
    pub(super) fn recover_interrupted_import(&self) -> Result<(), StoreError> {
        let Some(v) = self.meta.get(KEY_IMPORT_RUNNING).map_err(self.err())? else {
            return Ok(());
        };
        let started: Option<ImportReport> = serde_json::from_slice(&v).ok();
        let recorded = match &started {
            Some(r) => self.imports.contains_key(r.id.to_be_bytes()).map_err(self.err())?,
            None => true,
        };
        if let (Some(mut report), false) = (started, recorded) {
            let now = self.generation()?;
            let view = self.catalog()?;
            if now.is_some() && now != report.generation {
                let meta = view.map(|v| v.meta).unwrap_or_default();
                report.outcome = ImportOutcome::Success;
                report.finished_at = meta.imported_at.unwrap_or(report.started_at);
                report.counts.products = meta.live;
                report.counts.seasons = meta.seasons;
                report.error = None;
                tracing::warn!(
                    import = report.id,
                    generation = now,
                    "import #{} was interrupted after its catalogue came into force; its report is rebuilt \
                     from the new generation (the counts of changes are lost)",
                    report.id
                );
            } else {
                report.outcome = ImportOutcome::Failed;
                report.finished_at = self.clock.now().max(report.started_at);
                // The mark carries the last failure the import was retrying (`import::run_import`).
                let last = report
                    .error
                    .take()
                    .map(|e| format!(". Until then it was retrying after this error: {e}"))
                    .unwrap_or_default();
                report.error = Some(format!(
                    "import #{} was interrupted: secutix-sync stopped before the import finished (killed, crashed, \
                     the machine went down, or a shutdown past daemon.shutdown_grace); the previous catalogue \
                     stayed in force. The next scheduled import fetches the catalogue again; to import now, run \
                     `secutix-sync resync --catalogue`{last}",
                    report.id
                ));
                tracing::warn!(
                    import = report.id,
                    "the last import was interrupted; the previous catalogue stayed in force"
                );
            }
            report.generation = now;
            self.imports
                .insert(report.id.to_be_bytes(), encode(&report, "import report")?)
                .map_err(self.err())?;
        }
        self.meta.remove(KEY_IMPORT_RUNNING).map_err(self.err())?;
        self.flush()
    }

    /// Appends an import report (and ends the mark of [`Store::import_started`]).
    pub fn record_import(&self, report: &ImportReport) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(report).map_err(|e| StoreError::Corrupt {
            key: "import".into(),
            reason: e.to_string(),
        })?;
        self.imports
            .insert(report.id.to_be_bytes(), bytes)
            .map_err(self.err())?;
        let running = self.meta.get(KEY_IMPORT_RUNNING).map_err(self.err())?;
        if running
            .and_then(|v| serde_json::from_slice::<ImportReport>(&v).ok())
            .is_none_or(|r| r.id == report.id)
        {
            self.meta.remove(KEY_IMPORT_RUNNING).map_err(self.err())?;
        }
        // Keep the last 500 reports.
        while self.imports.len() > 500 {
            if self.imports.pop_min().map_err(self.err())?.is_none() {
                break;
            }
        }
        self.flush()
    }

    /// The most recent import reports, newest first.
    pub fn import_history(&self, limit: usize) -> Result<Vec<ImportReport>, StoreError> {
        self.imports
            .iter()
            .rev()
            .take(limit)
            .map(|r| {
                let (_, v) = r.map_err(self.err())?;
                decode(&v, "import report")
            })
            .collect()
    }

    /// The last successful (or unchanged) import.
    pub fn last_good_import(&self) -> Result<Option<ImportReport>, StoreError> {
        for r in self.imports.iter().rev() {
            let (_, v) = r.map_err(self.err())?;
            let rep: ImportReport = decode(&v, "import report")?;
            if matches!(rep.outcome, ImportOutcome::Success | ImportOutcome::Unchanged) {
                return Ok(Some(rep));
            }
        }
        Ok(None)
    }
}
