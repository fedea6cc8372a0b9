//! The outbox's reads: entries, acknowledgements, pending operations, dead letters, per target.

#[allow(unused_imports)]
use super::*;

impl Outbox {
    /// The stored entry of `external_id`.
    pub fn entry(&self, external_id: &str) -> Result<Option<StoredEntry>, StoreError> {
        self.entries.get(external_id)
    }

    /// What `target` acknowledged for `external_id`.
    pub fn acked(&self, target: &str, external_id: &str) -> Result<Option<AckRecord>, StoreError> {
        let t = self.trees(target)?;
        t.acked
            .get(external_id)
            .map_err(self.err())?
            .map(|v| decode(&v, external_id))
            .transpose()
    }

    /// Every acknowledgement of `target` (external id → record).
    pub fn acks(&self, target: &str) -> Result<BTreeMap<String, AckRecord>, StoreError> {
        let t = self.trees(target)?;
        t.acked
            .iter()
            .map(|r| {
                let (k, v) = r.map_err(self.err())?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode(&v, "ack")?))
            })
            .collect()
    }

    /// Pending operations of `target`.
    pub fn pending(&self, target: &str) -> Result<Vec<OutboxItem>, StoreError> {
        let t = self.trees(target)?;
        t.outbox
            .iter()
            .values()
            .map(|v| decode(&v.map_err(self.err())?, "outbox item"))
            .collect()
    }

    /// Every stored entry, in external id order, all in memory (tests, small stores); see
    /// [`Outbox::each_entry`] to go through them one at a time.
    pub fn entries(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.entries.iter().collect()
    }

    /// Every stored entry, in external id order, read one at a time (a large venue's entries take
    /// gigabytes once decoded).
    pub fn each_entry(&self) -> impl Iterator<Item = Result<StoredEntry, StoreError>> + '_ {
        self.entries.iter()
    }

    /// The pending operation of `target` for `external_id`.
    pub fn pending_item(&self, target: &str, external_id: &str) -> Result<Option<OutboxItem>, StoreError> {
        let t = self.trees(target)?;
        t.outbox
            .get(external_id)
            .map_err(self.err())?
            .map(|v| decode(&v, external_id))
            .transpose()
    }

    /// True when the current version of `external_id` is a dead letter of `target`.
    pub fn is_dead(&self, target: &str, external_id: &str) -> Result<bool, StoreError> {
        self.trees(target)?
            .dead_ids
            .contains_key(external_id)
            .map_err(self.err())
    }

    /// Number of pending operations of `target`.
    pub fn depth(&self, target: &str) -> Result<usize, StoreError> {
        Ok(self.trees(target)?.outbox.len())
    }

    /// Dead letters of `target` (or of all `targets`), oldest first.
    pub fn dead_letters(&self, targets: &[String]) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for name in targets {
            let t = self.trees(name)?;
            for v in t.dead.iter().values() {
                out.push(decode(&v.map_err(self.err())?, "dead letter")?);
            }
        }
        out.sort_by_key(|d: &DeadLetter| d.id);
        Ok(out)
    }

    /// Names of the targets that have state in the store (outbox, acknowledgements, dead letters), sorted;
    /// also targets removed from the configuration since, whose dead letters an operator may still list.
    pub fn targets_in_store(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .store
            .db()
            .tree_names()
            .into_iter()
            .filter_map(|n| {
                let n = String::from_utf8_lossy(&n).into_owned();
                let (name, suffix) = n.strip_prefix("push.")?.rsplit_once('.')?;
                matches!(suffix, "outbox" | "acked" | "dead" | "dead_ids").then(|| name.to_owned())
            })
            .collect();
        names.into_iter().collect()
    }

    /// Forgets what `target` acknowledged (after a CMS was restored from an old backup, or to rebuild a
    /// target from scratch): the next plan sends everything as new.
    pub fn forget_acks(&self, target: &str) -> Result<(), StoreError> {
        let t = self.trees(target)?;
        t.acked.clear().map_err(self.err())?;
        self.store.db().flush().map_err(self.err())?;
        Ok(())
    }
}
