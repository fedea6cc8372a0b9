//! The push worker: sends what is due, honours the rate limit and `Retry-After`, retries with back-off, pauses an unreachable target, buries what keeps failing; one drain at a time per target.

#[allow(unused_imports)]
use super::*;

impl DrainOptions {
    /// Drain what is due now, do not wait for back-offs.
    pub fn now() -> Self {
        Self::default()
    }
}

impl Worker {
    /// A worker for `target`.
    pub fn new(outbox: &Outbox, target: Arc<dyn Target>, settings: PushSettings) -> Result<Self, StoreError> {
        let trees = outbox.trees(target.name())?;
        let limiter = Arc::new(RateLimiter::new(
            settings.rate_per_second,
            Duration::from_secs(1),
            settings.rate_per_second.max(1),
        ));
        Ok(Self {
            clock: outbox.store.clock().clone(),
            outbox: outbox.clone(),
            trees,
            target,
            pause: std::sync::Mutex::new(TargetPause {
                until: None,
                probing: false,
                unreachable_wait: settings.backoff_initial,
            }),
            settings,
            limiter,
            on_settled: None,
        })
    }

    /// Calls `f` with the counts of each operation as it settles.
    pub fn on_settled(mut self, f: OnSettled) -> Self {
        self.on_settled = Some(f);
        self
    }

    /// The target.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    pub(super) fn err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        |e| self.outbox.store.sled_error(e)
    }

    pub(super) fn load_queue(&self) -> Result<BTreeSet<(DateTime<Utc>, u64, String)>, StoreError> {
        let mut q = BTreeSet::new();
        for v in self.trees.outbox.iter().values() {
            let item: OutboxItem = decode(&v.map_err(self.err())?, "outbox item")?;
            q.insert((item.next_attempt_at, item.seq, item.external_id));
        }
        Ok(q)
    }

    pub(super) fn current(&self, id: &str) -> Result<Option<OutboxItem>, StoreError> {
        self.trees
            .outbox
            .get(id)
            .map_err(self.err())?
            .map(|v| decode(&v, id))
            .transpose()
    }

    pub(super) fn operation(&self, item: &OutboxItem) -> Result<Operation, StoreError> {
        let stored = self.outbox.entry(&item.external_id)?;
        let acked: Option<AckRecord> = self
            .trees
            .acked
            .get(&item.external_id)
            .map_err(self.err())?
            .map(|v| decode(&v, "ack"))
            .transpose()?;
        let (entry, hash) = match stored {
            Some(mut s) => {
                // An unpublish carries the entry with `published: false`, also when the product is live but
                // left the target's selection.
                if item.kind != OpKind::Upsert {
                    s.entry.published = false;
                }
                (Some(s.entry), s.content_hash)
            }
            None => (None, item.content_hash.clone()),
        };
        Ok(Operation {
            kind: item.kind,
            external_id: item.external_id.clone(),
            content_hash: if item.kind == OpKind::Upsert {
                hash
            } else {
                item.content_hash.clone()
            },
            entry,
            remote_id: acked.as_ref().and_then(|a| a.remote_id.clone()),
            first_time: acked.is_none(),
            enqueued_at: item.enqueued_at,
        })
    }

    /// Acknowledged: remove the item if it is still this version, and record what the target has.
    pub(super) fn acknowledge(&self, item: &OutboxItem, op: &Operation, applied: Applied) -> Result<(), StoreError> {
        let now = self.clock.now();
        let previous_remote = op.remote_id.clone();
        let ack = AckRecord {
            content_hash: op.content_hash.clone(),
            kind: op.kind,
            remote_id: applied.remote_id.or(previous_remote),
            acked_at: now,
        };
        let id = item.external_id.as_bytes();
        let ack = encode(&ack, "ack")?;
        let r: Result<(), sled::transaction::TransactionError<()>> = (&self.trees.outbox, &self.trees.acked)
            .transaction(|(outbox, acked)| {
                if let Some(v) = outbox.get(id)?
                    && serde_json::from_slice::<OutboxItem>(&v).is_ok_and(|cur| cur.seq == item.seq)
                {
                    outbox.remove(id)?;
                }
                acked.insert(id, ack.as_slice())?;
                Ok(())
            });
        r.map_err(|e| match e {
            sled::transaction::TransactionError::Storage(s) => self.outbox.store.sled_error(s),
            sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                key: "outbox".into(),
                reason: "aborted".into(),
            },
        })
    }

    /// Rewrites the item (attempts, next attempt, error) if it is still this version.
    pub(super) fn reschedule(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        let id = item.external_id.as_bytes();
        let Some(cur) = self.trees.outbox.get(id).map_err(self.err())? else {
            return Ok(false);
        };
        let cur_item: OutboxItem = decode(&cur, "outbox item")?;
        if cur_item.seq != item.seq {
            return Ok(false);
        }
        let swapped = self
            .trees
            .outbox
            .compare_and_swap(id, Some(cur), Some(encode(item, "outbox item")?))
            .map_err(self.err())?;
        Ok(swapped.is_ok())
    }

    pub(super) fn bury(&self, item: &OutboxItem, error: &str) -> Result<(), StoreError> {
        let id = item.external_id.as_bytes();
        let dl = DeadLetter {
            id: self.outbox.next_seq()?,
            target: self.target.name().to_owned(),
            item: item.clone(),
            error: error.to_owned(),
            failed_at: self.clock.now(),
        };
        let mut dead_id = dl.id.to_be_bytes().to_vec();
        dead_id.extend_from_slice(item.content_hash.as_bytes());
        let dl_bytes = encode(&dl, "dead letter")?;
        let r: Result<(), sled::transaction::TransactionError<()>> =
            (&self.trees.outbox, &self.trees.dead, &self.trees.dead_ids).transaction(|(outbox, dead, dead_ids)| {
                if let Some(v) = outbox.get(id)?
                    && serde_json::from_slice::<OutboxItem>(&v).is_ok_and(|cur| cur.seq == item.seq)
                {
                    outbox.remove(id)?;
                }
                dead.insert(&dl.id.to_be_bytes(), dl_bytes.as_slice())?;
                dead_ids.insert(id, dead_id.clone())?;
                Ok(())
            });
        tracing::error!(target_name = %self.target.name(), external_id = %item.external_id, error, "operation moved to dead letters");
        r.map_err(|e| match e {
            sled::transaction::TransactionError::Storage(s) => self.outbox.store.sled_error(s),
            sled::transaction::TransactionError::Abort(()) => StoreError::Corrupt {
                key: "outbox".into(),
                reason: "aborted".into(),
            },
        })
    }

    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        // Full jitter: uniform in [0, cap], at least 100 ms.
        crate::backoff::Backoff::new(self.settings.backoff_initial, self.settings.backoff_max)
            .full_jitter(attempts, Duration::from_millis(100))
    }

    /// Sends what is due, waits for operations in back-off up to `opts.max_wait`, then returns.
    ///
    /// A target whose [`Target::max_batch`] is above 1 is handed up to that many due operations at once
    /// ([`Target::apply_batch`]): one task, one rate-limit token and one `request_timeout` for the batch,
    /// then each operation is acknowledged, retried or buried on its own outcome, as if sent alone.
    pub async fn drain(&self, opts: DrainOptions) -> Result<DrainReport, StoreError> {
        let pause = *self.pause.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = DrainState {
            report: DrainReport::default(),
            queue: self.load_queue()?,
            in_flight: HashSet::new(),
            paused_until: pause.until,
            unreachable_wait: pause.unreachable_wait,
            probing: pause.probing,
        };
        let mut tasks: JoinSet<Settled> = JoinSet::new();
        let batch_max = self.target.max_batch().max(1);
        let started = self.clock.now();
        let stop = opts.stop.clone().unwrap_or_default();
        loop {
            let now = self.clock.now();
            let slots = if stop.is_cancelled() {
                0
            } else if st.probing {
                1
            } else {
                self.settings.concurrency.max(1)
            };
            while tasks.len() < slots && st.paused_until.is_none_or(|p| p <= now) {
                // A target being probed gets one operation at a time.
                let size = if st.probing { 1 } else { batch_max };
                let batch = self.take_due(&mut st, now, size)?;
                if batch.is_empty() {
                    break;
                }
                let target = self.target.clone();
                let limiter = self.limiter.clone();
                let timeout = self.settings.request_timeout;
                tasks.spawn(async move {
                    limiter.acquire().await;
                    run_batch(target, batch, timeout).await
                });
            }
            if tasks.is_empty() {
                if stop.is_cancelled() {
                    break;
                }
                let Some(first) = st.queue.first() else { break };
                let due = st.paused_until.map_or(first.0, |p| p.max(first.0));
                if due > started + chrono::Duration::from_std(opts.max_wait).unwrap_or_default() && due > now {
                    break;
                }
                tokio::select! {
                    _ = sleep_until(&self.clock, due) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            let next_due = if tasks.len() < slots {
                st.queue.first().map(|f| st.paused_until.map_or(f.0, |p| p.max(f.0)))
            } else {
                None
            };
            let joined = tokio::select! {
                j = tasks.join_next() => j,
                _ = sleep_until(&self.clock, next_due.unwrap_or(now)), if next_due.is_some_and(|d| d > now) => continue,
            };
            let Some(joined) = joined else { continue };
            let settled = match joined {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "a push task stopped unexpectedly; its operations stay in the outbox");
                    continue;
                }
            };
            let now = self.clock.now();
            // One unreachable target pauses once per request, not once per operation of a batch.
            let mut batch_pause = None;
            for (item, op, outcome) in settled {
                st.in_flight.remove(&item.external_id);
                let before = (st.report.delivered, st.report.retried, st.report.dead);
                self.settle(&mut st, item, op, outcome, now, &mut batch_pause)?;
                if let Some(f) = &self.on_settled {
                    f(&DrainReport {
                        delivered: st.report.delivered - before.0,
                        retried: st.report.retried - before.1,
                        dead: st.report.dead - before.2,
                        ..DrainReport::default()
                    });
                }
            }
        }
        if let Err(e) = self.target.flush().await {
            tracing::error!(target_name = %self.target.name(), error = %e, "target flush failed");
        }
        *self.pause.lock().unwrap_or_else(|p| p.into_inner()) = TargetPause {
            until: st.paused_until,
            probing: st.probing,
            unreachable_wait: st.unreachable_wait,
        };
        st.report.pending = self.trees.outbox.len() as u64;
        st.report.next_attempt_at = st.queue.first().map(|f| st.paused_until.map_or(f.0, |p| p.max(f.0)));
        Ok(st.report)
    }

    /// Takes up to `size` due operations off the queue (current versions only, none already in flight).
    pub(super) fn take_due(
        &self,
        st: &mut DrainState,
        now: DateTime<Utc>,
        size: usize,
    ) -> Result<Vec<(OutboxItem, Operation)>, StoreError> {
        let mut batch = Vec::new();
        while batch.len() < size {
            let Some(first) = st.queue.first().cloned() else { break };
            if first.0 > now {
                break;
            }
            st.queue.pop_first();
            let (_, seq, id) = first;
            if st.in_flight.contains(&id) {
                continue;
            }
            let Some(item) = self.current(&id)? else { continue };
            if item.seq != seq {
                st.queue.insert((item.next_attempt_at, item.seq, id));
                continue;
            }
            let op = self.operation(&item)?;
            st.in_flight.insert(id);
            batch.push((item, op));
        }
        Ok(batch)
    }

    /// Records the outcome of one operation: acknowledgement, retry with back-off, probe of an unreachable
    /// target, or dead letter.
    pub(super) fn settle(
        &self,
        st: &mut DrainState,
        mut item: OutboxItem,
        op: Operation,
        outcome: Outcome,
        now: DateTime<Utc>,
        batch_pause: &mut Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // What is logged and stored never shows credentials of a URL.
        let outcome = match outcome {
            Outcome::Failed(e) => Outcome::Failed(e.redacted()),
            done => done,
        };
        match outcome {
            Outcome::Done(applied) => {
                self.acknowledge(&item, &op, applied)?;
                st.report.delivered += 1;
                if st.probing {
                    tracing::info!(target_name = %self.target.name(), "target reachable again");
                }
                st.probing = false;
                st.unreachable_wait = self.settings.backoff_initial;
                // A newer version may have been enqueued while this one was in flight.
                if let Some(cur) = self.current(&item.external_id)? {
                    st.queue.insert((cur.next_attempt_at, cur.seq, cur.external_id));
                }
            }
            Outcome::Failed(TargetError::Retryable {
                message,
                unreachable: true,
                ..
            }) => {
                // Not the operation's fault: pause the target and probe later, attempts untouched. Several
                // operations that were in flight together (a batch, the other concurrency slots) make one
                // pause, not one longer pause each.
                let current = st.paused_until.filter(|p| st.probing && *p > now);
                let until = match batch_pause.or(current) {
                    Some(until) => until,
                    None => {
                        if !st.probing {
                            tracing::warn!(target_name = %self.target.name(), error = %message, "target unreachable; pausing and probing");
                        }
                        st.probing = true;
                        let wait = crate::backoff::half_jitter(st.unreachable_wait);
                        st.unreachable_wait = crate::backoff::grow(st.unreachable_wait, self.settings.backoff_max);
                        let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                        st.paused_until = Some(until);
                        *batch_pause = Some(until);
                        until
                    }
                };
                item.last_error = Some(message);
                item.next_attempt_at = until;
                if self.reschedule(&item)? {
                    st.queue
                        .insert((item.next_attempt_at, item.seq, item.external_id.clone()));
                }
                st.report.retried += 1;
            }
            Outcome::Failed(TargetError::Retryable {
                message, retry_after, ..
            }) => {
                item.attempts += 1;
                item.last_error = Some(message.clone());
                if item.attempts >= self.settings.max_attempts {
                    self.bury(&item, &format!("gave up after {} attempts: {message}", item.attempts))?;
                    st.report.dead += 1;
                    return Ok(());
                }
                let mut wait = self.backoff(item.attempts);
                if let Some(ra) = retry_after {
                    wait = wait.max(ra);
                    let until = now + chrono::Duration::from_std(ra).unwrap_or_default();
                    st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
                }
                item.next_attempt_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                tracing::warn!(target_name = %self.target.name(), external_id = %item.external_id, attempt = item.attempts, retry_in = %crate::text::human(wait), error = %message, "push failed, will retry");
                if self.reschedule(&item)? {
                    st.queue
                        .insert((item.next_attempt_at, item.seq, item.external_id.clone()));
                } else if let Some(cur) = self.current(&item.external_id)? {
                    st.queue.insert((cur.next_attempt_at, cur.seq, cur.external_id));
                }
                st.report.retried += 1;
            }
            Outcome::Failed(TargetError::Permanent { message }) => {
                item.attempts += 1;
                self.bury(&item, &message)?;
                st.report.dead += 1;
                if let Some(cur) = self.current(&item.external_id)? {
                    st.queue.insert((cur.next_attempt_at, cur.seq, cur.external_id));
                }
            }
        }
        Ok(())
    }
}

/// Sends one operation (`Target::apply`) or several (`Target::apply_batch`) within `timeout`.
pub(super) async fn run_batch(
    target: Arc<dyn Target>,
    batch: Vec<(OutboxItem, Operation)>,
    timeout: Duration,
) -> Settled {
    let (items, ops): (Vec<OutboxItem>, Vec<Operation>) = batch.into_iter().unzip();
    let late = |op: &Operation| {
        let batch = if ops.len() > 1 {
            format!(" (in a batch of {})", ops.len())
        } else {
            String::new()
        };
        TargetError::retry(format!(
            "{} {}: no answer within {}{batch}",
            op.kind.as_str(),
            op.external_id,
            crate::text::human(timeout)
        ))
    };
    let mut results = if let [op] = ops.as_slice() {
        match tokio::time::timeout(timeout, target.apply(op)).await {
            Ok(r) => vec![r],
            Err(_) => vec![Err(late(op))],
        }
    } else {
        match tokio::time::timeout(timeout, target.apply_batch(&ops)).await {
            Ok(r) => r,
            Err(_) => ops.iter().map(|op| Err(late(op))).collect(),
        }
    };
    if results.len() != ops.len() {
        tracing::error!(target_name = %target.name(), sent = ops.len(), results = results.len(), "the target answered a batch with the wrong number of results; the operations without one are retried");
    }
    results.truncate(ops.len());
    while results.len() < ops.len() {
        let op = &ops[results.len()];
        results.push(Err(TargetError::retry(format!(
            "{} {}: the target returned no result for this operation of a batch",
            op.kind.as_str(),
            op.external_id
        ))));
    }
    items
        .into_iter()
        .zip(ops)
        .zip(results)
        .map(|((item, op), r)| {
            let outcome = match r {
                Ok(applied) => Outcome::Done(applied),
                Err(e) => Outcome::Failed(e),
            };
            (item, op, outcome)
        })
        .collect()
}

pub(super) async fn sleep_until(clock: &SharedClock, at: DateTime<Utc>) {
    let d = (at - clock.now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(d).await;
}
