//! A node's metadata view over a real gRPC metadata server: the view follows writes made
//! by anyone (pushed by `MetadataServer.Watch`), and catches up after the server restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use restate_metadata::objects::PartitionTable;
use restate_metadata::{
    typed, view_follower, LocalMetadataStore, MetadataClient, MetadataClientOptions, MetadataServerService,
    MetadataView, Precondition,
};
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::Version;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Serves `store` at `address` until `stop`.
fn serve(store: Arc<LocalMetadataStore>, address: SocketAddr, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(MetadataServerService::new(store, stop.clone()).into_server())
            .serve_with_shutdown(address, stop.cancelled_owned())
            .await
            .unwrap();
    })
}

#[tokio::test]
async fn a_view_follows_every_write_and_catches_up_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalMetadataStore::new(NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap()));
    let address = free_address();
    let stop_server = CancellationToken::new();
    let server = serve(store.clone(), address, stop_server.clone());

    let client =
        Arc::new(MetadataClient::new(&[format!("http://{address}")], MetadataClientOptions::default()).unwrap());
    let view = MetadataView::new(client.clone());
    let stop_view = CancellationToken::new();
    let follower = tokio::spawn(view_follower::follow(view.clone(), client, stop_view.clone()));

    // Written by another party (straight into the store): pushed to the view.
    typed::put(store.as_ref(), &PartitionTable::evenly_split(3), Precondition::None).await.unwrap();
    let seen = view.wait_for_version::<PartitionTable>(Version(1), WAIT).await.unwrap();
    assert_eq!(seen.0.partitions.len(), 3);
    typed::put(store.as_ref(), &PartitionTable::evenly_split(5), Precondition::None).await.unwrap();
    assert_eq!(view.wait_for_version::<PartitionTable>(Version(2), WAIT).await.unwrap().0.partitions.len(), 5);

    // The server goes away; a write made meanwhile reaches the view once it is back.
    stop_server.cancel();
    server.await.unwrap();
    typed::put(store.as_ref(), &PartitionTable::evenly_split(7), Precondition::None).await.unwrap();
    assert_eq!(view.get::<PartitionTable>().unwrap().1, Version(2), "nobody told the view yet");
    let server = serve(store.clone(), address, CancellationToken::new());
    assert_eq!(view.wait_for_version::<PartitionTable>(Version(3), WAIT).await.unwrap().0.partitions.len(), 7);

    stop_view.cancel();
    follower.await.unwrap();
    server.abort();
}
