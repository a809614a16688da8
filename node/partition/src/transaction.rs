//! The changes of one record being applied, layered over the store: reads see the
//! record's own earlier writes, and nothing reaches the store until the state machine
//! commits the whole [`WriteSet`] (with the applied LSN) at once.

use std::collections::BTreeMap;

use super::store::{KeyValue, KvRead, StoreError, WriteSet};

pub struct Transaction<'a, S: KvRead + ?Sized> {
    base: &'a S,
    writes: WriteSet,
}

impl<'a, S: KvRead + ?Sized> Transaction<'a, S> {
    pub fn new(base: &'a S) -> Transaction<'a, S> {
        Transaction { base, writes: WriteSet::default() }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.put(key, value);
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.delete(key);
    }

    /// Takes `changes` in as if each had been put or deleted here, over earlier ones.
    pub fn absorb(&mut self, changes: WriteSet) {
        self.writes.absorb(changes);
    }

    pub fn into_writes(self) -> WriteSet {
        self.writes
    }
}

impl<S: KvRead + ?Sized> KvRead for Transaction<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.change(key) {
            Some(change) => Ok(change.map(<[u8]>::to_vec)),
            None => self.base.get(key),
        }
    }

    fn scan(&self, lower: &[u8], upper: Option<&[u8]>) -> Result<Vec<KeyValue>, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self.base.scan(lower, upper)?.into_iter().collect();
        for (key, change) in self.writes.range(lower, upper) {
            match change {
                Some(value) => merged.insert(key.to_vec(), value.to_vec()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::MemoryPartitionStore;
    use crate::store::PartitionStore;
    use restate_types::PartitionId;

    #[test]
    fn reads_see_own_writes_over_the_store() {
        let store = MemoryPartitionStore::new(PartitionId(0));
        let mut base = WriteSet::default();
        for key in [b"a1", b"a2", b"a3", b"b1"] {
            base.put(key.to_vec(), b"old".to_vec());
        }
        store.commit(base).unwrap();

        let mut tx = Transaction::new(&store);
        tx.delete(b"a2".to_vec());
        tx.put(b"a3".to_vec(), b"new".to_vec());
        tx.put(b"a4".to_vec(), b"new".to_vec());
        assert_eq!(tx.get(b"a2").unwrap(), None);
        assert_eq!(tx.get(b"a3").unwrap(), Some(b"new".to_vec()));
        assert_eq!(tx.get(b"b1").unwrap(), Some(b"old".to_vec()));
        let keys = tx.scan_prefix(b"a").unwrap();
        assert_eq!(
            keys,
            vec![
                (b"a1".to_vec(), b"old".to_vec()),
                (b"a3".to_vec(), b"new".to_vec()),
                (b"a4".to_vec(), b"new".to_vec())
            ]
        );
        assert_eq!(store.get(b"a4").unwrap(), None, "nothing reaches the store before commit");
    }
}
