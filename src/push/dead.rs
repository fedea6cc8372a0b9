//! Dead letters: replaying them (one or all of a target's) and dropping one.

#[allow(unused_imports)]
use super::*;

impl Outbox {
    /// Puts dead letters of `target` back in the outbox (`id` = one, `None` = all). A dead letter whose entry
    /// has a newer pending operation is dropped as superseded. Returns (replayed, superseded).
    pub fn replay(&self, target: &str, id: Option<u64>) -> Result<(u64, u64), PushError> {
        let t = self.trees(target)?;
        let now = self.store.clock().now();
        let letters: Vec<DeadLetter> = match id {
            Some(id) => match t.dead.get(id.to_be_bytes()).map_err(self.err())? {
                Some(v) => vec![decode(&v, "dead letter")?],
                None => {
                    return Err(PushError::NotFound(format!(
                        "no dead letter {id} for target {target}; see `dlq list`"
                    )));
                }
            },
            None => t
                .dead
                .iter()
                .values()
                .map(|v| decode(&v.map_err(self.err())?, "dead letter"))
                .collect::<Result<_, _>>()?,
        };
        let (mut replayed, mut superseded) = (0, 0);
        for dl in letters {
            let id = dl.item.external_id.clone();
            if t.outbox.get(&id).map_err(self.err())?.is_none() {
                let hash = match (dl.item.kind, self.entries.content_hash(&id)?) {
                    (OpKind::Upsert, Some(h)) => h,
                    _ => dl.item.content_hash.clone(),
                };
                let item = OutboxItem {
                    seq: self.next_seq()?,
                    attempts: 0,
                    next_attempt_at: now,
                    content_hash: hash,
                    ..dl.item.clone()
                };
                t.outbox
                    .insert(id.as_bytes(), encode(&item, "outbox item")?)
                    .map_err(self.err())?;
                replayed += 1;
            } else {
                superseded += 1;
            }
            t.dead.remove(dl.id.to_be_bytes()).map_err(self.err())?;
            t.dead_ids.remove(&id).map_err(self.err())?;
        }
        self.store.db().flush().map_err(self.err())?;
        Ok((replayed, superseded))
    }

    /// Drops a dead letter of `target`: that version of the entry is not sent again. The planner skips it
    /// (counted as `dropped`) until the entry changes or a full re-push is asked for.
    pub fn drop_dead_letter(&self, target: &str, id: u64) -> Result<DeadLetter, PushError> {
        let t = self.trees(target)?;
        let Some(v) = t.dead.remove(id.to_be_bytes()).map_err(self.err())? else {
            return Err(PushError::NotFound(format!(
                "no dead letter {id} for target {target}; see `dlq list`"
            )));
        };
        let dl: DeadLetter = decode(&v, "dead letter")?;
        let ext = dl.item.external_id.as_bytes();
        // Only if this dead letter is still the entry's latest word (a newer one replaces it otherwise).
        if let Some(cur) = t.dead_ids.get(ext).map_err(self.err())?
            && cur[..8] == id.to_be_bytes()
        {
            let mut marker = DROPPED.to_be_bytes().to_vec();
            marker.extend_from_slice(&cur[8..]);
            t.dead_ids.insert(ext, marker).map_err(self.err())?;
        }
        self.store.db().flush().map_err(self.err())?;
        Ok(dl)
    }
}
