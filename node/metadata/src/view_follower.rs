//! Keeps a [`MetadataView`] fresh from the metadata server's change feed
//! (`MetadataServer.Watch`): one stream per node, to whichever server serves it (the
//! replicated store's leader). The first update of a stream is the whole store, so a
//! reconnect repairs whatever was missed. A stream silent for [`SILENCE`] (the server sends
//! an update every second) is taken for dead and opened again. Runs until `shutdown`.

use std::time::Duration;

use restate_types::Backoff;
use tokio_util::sync::CancellationToken;

use crate::client::MetadataClient;
use crate::feed::FeedUpdate;
use crate::view::MetadataView;
use crate::wire;

/// A stream that sent nothing for this long is opened again.
pub const SILENCE: Duration = Duration::from_millis(2500);
/// Pauses between attempts to open the feed: short at first (a leader election takes
/// about a second), at most this long.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Follows the feed into `view` until `shutdown`.
pub async fn follow(view: MetadataView, client: std::sync::Arc<MetadataClient>, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(50), MAX_BACKOFF);
    let mut following = false;
    loop {
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            opened = client.watch() => opened,
        };
        match opened {
            Ok((address, mut stream)) => {
                let ended = loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = tokio::time::timeout(SILENCE, stream.message()) => next,
                    };
                    match next {
                        Ok(Ok(Some(update))) => {
                            if !following {
                                tracing::info!("metadata view follows the metadata store's changes");
                                following = true;
                            }
                            backoff.reset();
                            apply(&view, from_wire(update));
                        }
                        Ok(Ok(None)) => break "the server ended the stream".to_owned(),
                        Ok(Err(status)) => break restate_proto::transport_errors::describe(&status),
                        Err(_) => {
                            // A silent member (paused, cut off) would be asked first again.
                            client.penalize(&address);
                            break format!("nothing arrived for {SILENCE:?}");
                        }
                    }
                };
                tracing::debug!("metadata view: change feed from {address} interrupted ({ended}); opening it again");
            }
            Err(e) => {
                if following {
                    tracing::info!("metadata view: cannot follow the metadata store's changes yet: {e}");
                    following = false;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

fn from_wire(update: restate_proto::metadata::WatchUpdate) -> FeedUpdate {
    FeedUpdate {
        full: update.full,
        values: update.values.into_iter().filter_map(|kv| Some((kv.key, wire::value_from_wire(kv.value?)))).collect(),
        deleted: update.deleted,
    }
}

/// Installs one update; a full one also forgets the keys it does not list.
pub(crate) fn apply(view: &MetadataView, update: FeedUpdate) {
    if update.full {
        for key in view.keys() {
            if !update.values.iter().any(|(k, _)| *k == key) {
                view.remove(&key);
            }
        }
    }
    for key in &update.deleted {
        view.remove(key);
    }
    for (key, value) in update.values {
        view.install(&key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{MetadataObject, PartitionTable, SchedulingPlan};
    use crate::store::{MetadataStore, Precondition};
    use crate::{typed, LocalMetadataStore};
    use restate_storage::{NodeStorage, StorageOptions};
    use std::sync::Arc;

    #[tokio::test]
    async fn the_feed_brings_a_view_to_the_store_s_contents() {
        use crate::feed::FollowableStore;
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(LocalMetadataStore::new(NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap()));
        let view = MetadataView::new(store.clone());
        let mut seq = None;
        let next = |store: &LocalMetadataStore, since: &mut Option<u64>| {
            let (at, update) = store.update_since(*since).unwrap();
            *since = Some(at);
            update
        };
        typed::put(store.as_ref(), &PartitionTable::evenly_split(2), Precondition::None).await.unwrap();
        typed::put(store.as_ref(), &SchedulingPlan::default(), Precondition::None).await.unwrap();
        apply(&view, next(&store, &mut seq));
        assert_eq!(view.get::<PartitionTable>().unwrap().0.partitions.len(), 2);

        typed::put(store.as_ref(), &PartitionTable::evenly_split(5), Precondition::None).await.unwrap();
        store.delete(SchedulingPlan::KEY, Precondition::None).await.unwrap();
        apply(&view, next(&store, &mut seq));
        assert_eq!(view.get::<PartitionTable>().unwrap().0.partitions.len(), 5);
        assert!(view.get::<SchedulingPlan>().is_none(), "deleted in the store");

        // A reconnect starts over with the whole store.
        let fresh = None;
        typed::put(store.as_ref(), &SchedulingPlan::default(), Precondition::None).await.unwrap();
        let whole = store.update_since(fresh).unwrap().1;
        assert!(whole.full);
        apply(&view, whole);
        assert!(view.get::<SchedulingPlan>().is_some());

        // A key deleted and written again reaches the view at its new, lower version.
        let version = typed::put(store.as_ref(), &PartitionTable::evenly_split(3), Precondition::None).await.unwrap();
        apply(&view, next(&store, &mut seq));
        store.delete(PartitionTable::KEY, Precondition::MatchesVersion(version)).await.unwrap();
        typed::put(store.as_ref(), &PartitionTable::evenly_split(7), Precondition::DoesNotExist).await.unwrap();
        apply(&view, next(&store, &mut seq));
        assert_eq!(view.get::<PartitionTable>().unwrap().0.partitions.len(), 7);
    }
}
