//! Planning: every entry built, hashed and compared with what each target acknowledged; the operations it needs written to the outbox, in batches, before anything is sent.

#[allow(unused_imports)]
use super::*;

impl PlanTarget {
    /// A target that wants every product.
    pub fn new(name: impl Into<String>, delete_policy: DeletePolicy) -> Self {
        Self {
            name: name.into(),
            delete_policy,
            filter: None,
        }
    }

    pub(super) fn wants(&self, product: &crate::catalog::Product) -> bool {
        self.filter.as_ref().is_none_or(|f| f(product))
    }
}

impl std::fmt::Debug for PlanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanTarget")
            .field("name", &self.name)
            .field("delete_policy", &self.delete_policy)
            .field("filter", &self.filter.as_ref().map(|_| "(filter)"))
            .finish()
    }
}

impl Outbox {
    /// Builds entries for `scope` and enqueues what each target lacks. With `full`, every live entry is
    /// re-sent. With `dry_run`, nothing is written: the report is the plan.
    pub fn plan(
        &self,
        targets: &[PlanTarget],
        options: &EntryOptions,
        status: &StatusFn<'_>,
        scope: &Scope,
        full: bool,
        dry_run: bool,
    ) -> Result<PlanReport, StoreError> {
        let mut report = PlanReport::default();
        let Some(view) = self.store.catalog()? else {
            return Ok(report);
        };
        let seasons: BTreeMap<Id, Season> = view.seasons()?.into_iter().filter_map(|s| Some((s.id?, s))).collect();
        let now = self.store.clock().now();
        let ctx = MergeContext {
            options,
            pos: view.meta.pos.as_ref(),
            seasons: &seasons,
            status,
            now,
        };
        let trees: Vec<(PlanTarget, TargetTrees)> = targets
            .iter()
            .map(|t| Ok((t.clone(), self.trees(&t.name)?)))
            .collect::<Result<_, StoreError>>()?;
        for t in targets {
            report.targets.insert(t.name.clone(), TargetPlan::default());
        }
        let records: Box<dyn Iterator<Item = Result<crate::store::ProductRecord, StoreError>>> = match scope {
            Scope::All => Box::new(view.products()),
            Scope::Products(ids) => Box::new(
                // Each product once: a duplicate would be planned twice within one batch.
                ids.iter()
                    .copied()
                    .collect::<BTreeSet<Id>>()
                    .into_iter()
                    .filter_map(|id| view.product(id).transpose())
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
        };
        let mut batch = PlanBatch::default();
        for record in records {
            let record = record?;
            let entry = merge::build_entry(&record, &ctx);
            // The bytes hashed are the bytes stored.
            let body = encode(&entry, &format!("entry {}", entry.external_id))?;
            let hash = crate::entry::content_hash_of_json(&body, options.mapping_version);
            let id = entry.external_id.clone();
            report.entries += 1;
            if self.entries.content_hash(&id)?.as_ref() != Some(&hash) {
                report.changed_entries += 1;
                report.changed.push(id.clone());
                if !dry_run {
                    batch.bytes += body.len();
                    batch.entries.push(EntryWrite {
                        external_id: id.clone(),
                        content_hash: hash.clone(),
                        body,
                    });
                }
            }
            for (ti, (target, t)) in trees.iter().enumerate() {
                let plan = report.targets.entry(target.name.clone()).or_default();
                let acked: Option<AckRecord> = t
                    .acked
                    .get(&id)
                    .map_err(self.err())?
                    .map(|v| decode(&v, &id))
                    .transpose()?;
                let wanted = target.wants(&record.product);
                let kind = if entry.published && wanted {
                    let up_to_date = acked
                        .as_ref()
                        .is_some_and(|a| a.kind == OpKind::Upsert && a.content_hash == hash);
                    if up_to_date && !full {
                        plan.unchanged += 1;
                        continue;
                    }
                    OpKind::Upsert
                } else {
                    let on_target = acked.as_ref().is_some_and(|a| a.kind == OpKind::Upsert);
                    let live = record.removed_at.is_none();
                    let policy = match (live, entry.published, target.delete_policy) {
                        // Listed, in a state that is not published (not announced yet): hidden on every
                        // target, whatever its delete policy (which is for products SecuTix stopped listing).
                        (true, false, _) => DeletePolicy::Unpublish,
                        // A live product that left the selection is withdrawn, never deleted.
                        (true, true, DeletePolicy::Delete) => DeletePolicy::Unpublish,
                        (_, _, p) => p,
                    };
                    match (policy, on_target) {
                        (_, false) | (DeletePolicy::Keep, _) if !wanted => {
                            plan.skipped += 1;
                            continue;
                        }
                        (DeletePolicy::Keep, _) | (_, false) => {
                            plan.unchanged += 1;
                            continue;
                        }
                        (DeletePolicy::Unpublish, true) => OpKind::Unpublish,
                        (DeletePolicy::Delete, true) => OpKind::Delete,
                    }
                };
                if let Some(dead) = t.dead_ids.get(&id).map_err(self.err())? {
                    let dead_hash = String::from_utf8_lossy(&dead[8..]).into_owned();
                    if dead_hash == hash && !full {
                        if dead[..8] == DROPPED.to_be_bytes() {
                            plan.dropped += 1;
                        } else {
                            plan.dead += 1;
                        }
                        continue;
                    }
                }
                let pending: Option<OutboxItem> = t
                    .outbox
                    .get(&id)
                    .map_err(self.err())?
                    .map(|v| decode(&v, &id))
                    .transpose()?;
                if pending
                    .as_ref()
                    .is_some_and(|p| p.kind == kind && p.content_hash == hash)
                {
                    // Already queued.
                    plan.unchanged += 1;
                    continue;
                }
                let first_time = acked.is_none();
                match kind {
                    OpKind::Upsert if first_time => plan.create += 1,
                    OpKind::Upsert => plan.update += 1,
                    OpKind::Unpublish => plan.unpublish += 1,
                    OpKind::Delete => plan.delete += 1,
                }
                plan.operations.push((kind, id.clone(), first_time));
                if dry_run {
                    continue;
                }
                let item = OutboxItem {
                    seq: self.next_seq()?,
                    kind,
                    external_id: id.clone(),
                    content_hash: hash.clone(),
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    enqueued_at: now,
                };
                batch.operations.push((ti, item));
            }
            if batch.bytes >= PLAN_BATCH_BYTES || batch.operations.len() >= 1024 {
                self.write_batch(&trees, &mut batch)?;
            }
        }
        if !dry_run {
            self.write_batch(&trees, &mut batch)?;
            // Durable before anything is sent.
            self.store.db().flush().map_err(self.err())?;
            self.entries.compact_if_needed()?;
        }
        Ok(report)
    }

    /// Writes a plan's batch: its entries (synced to disk), then the operations that send them.
    pub(super) fn write_batch(
        &self,
        trees: &[(PlanTarget, TargetTrees)],
        batch: &mut PlanBatch,
    ) -> Result<(), StoreError> {
        self.entries.write(&batch.entries)?;
        for (ti, item) in batch.operations.drain(..) {
            let t = &trees[ti].1;
            let id = item.external_id.as_bytes();
            t.outbox.insert(id, encode(&item, "outbox item")?).map_err(self.err())?;
            // A newer version replaces a dead letter of an older one.
            if let Some(dead) = t.dead_ids.remove(id).map_err(self.err())? {
                t.dead.remove(&dead[..8]).map_err(self.err())?;
            }
        }
        batch.entries.clear();
        batch.bytes = 0;
        Ok(())
    }
}
