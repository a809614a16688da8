//! Reading and writing the typed objects of [`crate::objects`] by their keys.

use bytes::Bytes;
use restate_types::Version;

use crate::objects::MetadataObject;
use crate::store::{MetadataStore, MetadataStoreError, Precondition, WriteOp};

pub fn encode<T: MetadataObject>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("metadata objects serialize"))
}

pub fn decode<T: MetadataObject>(bytes: &[u8]) -> Result<T, MetadataStoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| MetadataStoreError::Storage(format!("stored {} (key '{}') does not decode: {e}", T::NAME, T::KEY)))
}

/// The object and its version, or None when it was never written.
pub async fn get<T: MetadataObject>(store: &dyn MetadataStore) -> Result<Option<(T, Version)>, MetadataStoreError> {
    match store.get(T::KEY).await? {
        Some(v) => Ok(Some((decode::<T>(&v.value)?, v.version))),
        None => Ok(None),
    }
}

pub async fn put<T: MetadataObject>(
    store: &dyn MetadataStore,
    value: &T,
    precondition: Precondition,
) -> Result<Version, MetadataStoreError> {
    store.put(T::KEY, encode(value), precondition).await
}

pub fn put_op<T: MetadataObject>(value: &T, precondition: Precondition) -> WriteOp {
    WriteOp::Put { key: T::KEY.to_owned(), value: encode(value), precondition }
}

/// Reads, changes with `update` and writes back with a version precondition, retrying
/// when a concurrent writer got there first. `update` returns `Ok(None)` for "no change".
pub async fn read_modify_write<T, E, F>(
    store: &dyn MetadataStore,
    mut update: F,
) -> Result<Result<(T, Version), E>, MetadataStoreError>
where
    T: MetadataObject + Default + Clone,
    F: FnMut(Option<T>) -> Result<Option<T>, E>,
{
    for _ in 0..32 {
        let current = get::<T>(store).await?;
        let precondition = match &current {
            Some((_, version)) => Precondition::MatchesVersion(*version),
            None => Precondition::DoesNotExist,
        };
        let next = match update(current.clone().map(|(t, _)| t)) {
            Ok(Some(next)) => next,
            // "No change": the current value, or the default at version 0 if absent.
            Ok(None) => return Ok(Ok(current.unwrap_or_else(|| (T::default(), Version(0))))),
            Err(e) => return Ok(Err(e)),
        };
        match put(store, &next, precondition).await {
            Ok(version) => return Ok(Ok((next, version))),
            Err(MetadataStoreError::PreconditionFailed { .. }) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(MetadataStoreError::Unavailable(format!("too much write contention on '{}'", T::KEY)))
}
