//! The loglet client appends on one `AppendStream` call per log-server: a one-member
//! loglet on a real RocksDB and raft engine, served over gRPC on loopback.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use restate_bifrost::replicated::{HostedLoglet, LogServerService, ReplicatedLoglet, ReplicatedLogletHost};
use restate_bifrost::{LocalLogletProvider, Loglet};
use restate_raft::{LocalNetwork, RaftEngine, RaftOptions};
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::{LogletId, Lsn};
use tokio_util::sync::CancellationToken;

const LOGLET: LogletId = LogletId(5);

struct Server {
    address: String,
    hosted: Arc<HostedLoglet>,
    engine: RaftEngine,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A log-server hosting `LOGLET` alone; with `streams == false` it answers `AppendStream`
/// with UNIMPLEMENTED, as a node of a release before append streams does. `stop` is the
/// node's shutdown: it ends the append streams, then the server drains.
async fn server(streams: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::default();
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let options = RaftOptions { tick_interval: Duration::from_millis(10), ..RaftOptions::default() };
    let engine = RaftEngine::start(storage.clone(), 1, net.transport(1), options);
    net.register(1, engine.clone());
    let host = Arc::new(ReplicatedLogletHost::new(engine.clone(), storage.clone(), Default::default()));
    let hosted = host.ensure(LOGLET, vec![1]).await.unwrap();
    let mut status = hosted.status.clone();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.is_leader)).await.unwrap().unwrap();

    let stop = CancellationToken::new();
    let service = LogServerService::new(host, Arc::new(LocalLogletProvider::new(storage)), stop.clone());
    let mut router = tonic::service::Routes::new(service).into_axum_router();
    if !streams {
        router = router.route(
            "/restate.log_server.LogServer/AppendStream",
            axum::routing::post(|| async {
                tonic::Status::unimplemented("not served here").into_http::<axum::body::Body>()
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = stop.clone();
    let served = tokio::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await.unwrap();
    });
    Server { address, hosted, engine, stop, served, _dir: dir }
}

/// 16 appenders through one client, 30 appends each: every record at the LSN its append
/// was told, once.
async fn append_concurrently(client: &Arc<ReplicatedLoglet>) -> Vec<(u64, Bytes)> {
    let appenders: Vec<_> = (0..16u64)
        .map(|appender| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                for i in 0..30u64 {
                    let record = Bytes::from(format!("{appender}-{i}"));
                    let lsn = client.append(vec![record.clone()]).await.unwrap();
                    answered.push((lsn.0, record));
                }
                answered
            })
        })
        .collect();
    let mut answered = Vec::new();
    for appender in appenders {
        answered.extend(appender.await.unwrap());
    }
    answered.sort();
    answered
}

async fn check_log(client: &ReplicatedLoglet, answered: &[(u64, Bytes)]) {
    let lsns: Vec<u64> = answered.iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, (1..=answered.len() as u64).collect::<Vec<_>>(), "one LSN per record, none twice");
    let mut read = Vec::new();
    let mut from = Lsn(1);
    while read.len() < answered.len() {
        let batch = client.read(from, 100).await.unwrap();
        from = batch.next_lsn;
        read.extend(batch.records.into_iter().map(|r| (r.lsn.0, r.payload)));
    }
    assert_eq!(read, answered, "each record is where its append was told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_a_stream_each_get_their_own_lsn() {
    let server = server(true).await;
    let client = Arc::new(ReplicatedLoglet::new(LOGLET, vec![server.address.clone()]));
    let answered = append_concurrently(&client).await;
    check_log(&client, &answered).await;
    // The same through the unary call (what other tools and older nodes send).
    let mut unary =
        restate_proto::log_server::log_server_client::LogServerClient::connect(server.address.clone()).await.unwrap();
    let request = restate_proto::log_server::AppendRequest { loglet_id: LOGLET.0, records: vec![Bytes::from("u")] };
    let last = unary.append(request).await.unwrap().into_inner().last_lsn;
    assert_eq!(last, answered.len() as u64 + 1);
    let refused = unary
        .append(restate_proto::log_server::AppendRequest { loglet_id: LOGLET.0, records: vec![] })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    server.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_server_without_append_streams_gets_unary_appends() {
    let server = server(false).await;
    let client = Arc::new(ReplicatedLoglet::new(LOGLET, vec![server.address.clone()]));
    let answered = append_concurrently(&client).await;
    check_log(&client, &answered).await;
    assert_eq!(server.hosted.state.read().unwrap().next_lsn, answered.len() as u64 + 1, "nothing appended twice");
    server.engine.shutdown();
}

/// A stopping node's append streams end (its server's drain would otherwise wait for
/// clients that keep them open), and a client learns its appends there are not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_log_server_ends_its_append_streams() {
    let server = server(true).await;
    let client = Arc::new(ReplicatedLoglet::new(LOGLET, vec![server.address.clone()]));
    assert_eq!(client.append(vec![Bytes::from("before")]).await.unwrap(), Lsn(1));
    server.stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.served)
        .await
        .expect("the server drained within 5 s: its open append stream ended")
        .unwrap();
    let refused = client.append(vec![Bytes::from("after")]).await.unwrap_err().to_string();
    assert!(refused.contains("no log-server of its nodeset answered"), "{refused}");
    assert_eq!(server.hosted.state.read().unwrap().next_lsn, 2, "the refused append did not apply");
    server.engine.shutdown();
}
