//! Virtual logs over real RocksDB: the Logs metadata in a LocalMetadataStore and local
//! loglets in the same NodeStorage, as on a single node.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use restate_bifrost::{Bifrost, BifrostError, LocalLogletProvider, LogReadBatch, LogRecord, TrimGap};
use restate_metadata::objects::{Logs, Segment};
use restate_metadata::{typed, LocalMetadataStore, MetadataView, Precondition};
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::{LogId, LogProviderKind, LogletId, Lsn, PlainNodeId};

const N1: PlainNodeId = PlainNodeId(1);
const LOG: LogId = LogId(0);

/// One node's view: Bifrost, and the store it reads Logs from.
struct Node {
    bifrost: Arc<Bifrost>,
    store: Arc<LocalMetadataStore>,
    provider: Arc<LocalLogletProvider>,
}

fn open(dir: &tempfile::TempDir) -> Node {
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let store = Arc::new(LocalMetadataStore::new(storage.clone()));
    let provider = Arc::new(LocalLogletProvider::new(storage));
    let bifrost = Arc::new(Bifrost::new(MetadataView::new(store.clone()), provider.clone()).with_node_id(N1));
    Node { bifrost, store, provider }
}

/// A node whose metadata holds `logs`.
async fn provisioned(dir: &tempfile::TempDir, logs: &Logs) -> Node {
    let node = open(dir);
    typed::put(&*node.store, logs, Precondition::DoesNotExist).await.unwrap();
    node
}

fn local_logs(num_logs: u32) -> Logs {
    Logs::initial(num_logs, LogProviderKind::Local, 1, vec![N1])
}

fn payload(n: u64) -> Bytes {
    Bytes::from(format!("record-{n}"))
}

fn payloads(range: std::ops::RangeInclusive<u64>) -> Vec<Bytes> {
    range.map(payload).collect()
}

fn lsns(records: &[LogRecord]) -> Vec<u64> {
    records.iter().map(|r| r.lsn.0).collect()
}

/// Reads the whole log from `from` in small batches, as a consumer would, collecting any
/// trim gaps on the way.
async fn read_all(bifrost: &Bifrost, from: Lsn) -> (Vec<TrimGap>, Vec<LogRecord>) {
    let (mut gaps, mut records, mut next) = (Vec::new(), Vec::new(), from);
    loop {
        let LogReadBatch { trim_gap, records: batch, next_lsn } = bifrost.read(LOG, next, 3).await.unwrap();
        gaps.extend(trim_gap);
        if batch.is_empty() && next_lsn == next {
            return (gaps, records);
        }
        records.extend(batch);
        next = next_lsn;
    }
}

/// The first test's history: 5 records, a local -> local seal_and_extend, 5 more.
async fn write_two_segments(bifrost: &Bifrost) -> Segment {
    assert_eq!(bifrost.append(LOG, payloads(1..=2)).await.unwrap(), Lsn(2));
    assert_eq!(bifrost.append(LOG, payloads(3..=5)).await.unwrap(), Lsn(5));
    let segment = bifrost.seal_and_extend(LOG, LogProviderKind::Local, 1, vec![N1]).await.unwrap();
    for n in 6..=10 {
        assert_eq!(bifrost.append(LOG, vec![payload(n)]).await.unwrap(), Lsn(n));
    }
    segment
}

async fn assert_two_segment_history(bifrost: &Bifrost) {
    let (gaps, records) = read_all(bifrost, Lsn(1)).await;
    assert!(gaps.is_empty());
    assert_eq!(lsns(&records), (1..=10).collect::<Vec<_>>());
    assert!(records.iter().all(|r| r.payload == payload(r.lsn.0)));
    // One read crosses the segment boundary seamlessly.
    let batch = bifrost.read(LOG, Lsn(4), 4).await.unwrap();
    assert_eq!(lsns(&batch.records), vec![4, 5, 6, 7]);
    assert_eq!(batch.next_lsn, Lsn(8));
    assert_eq!(bifrost.find_tail(LOG).await.unwrap().next_lsn, Lsn(11));
}

#[tokio::test]
async fn appends_continue_across_a_seal_with_virtual_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let logs = local_logs(2);
    let next_loglet_id = logs.next_loglet_id;
    let node = provisioned(&dir, &logs).await;
    let bifrost = &node.bifrost;

    let segment = write_two_segments(bifrost).await;
    assert_eq!(
        segment,
        Segment {
            base_lsn: Lsn(6),
            kind: LogProviderKind::Local,
            loglet_id: next_loglet_id,
            replication: 1,
            nodeset: vec![N1],
            joined: vec![]
        }
    );
    let (stored, _) = typed::get::<Logs>(&*node.store).await.unwrap().unwrap();
    assert_eq!(stored.next_loglet_id, LogletId(next_loglet_id.0 + 1));
    assert_eq!(stored.logs[&LOG].segments.len(), 2);
    // The other log is untouched.
    assert_eq!(stored.logs[&LogId(1)], logs.logs[&LogId(1)]);

    assert_two_segment_history(bifrost).await;
    let tail = bifrost.find_tail(LOG).await.unwrap();
    assert_eq!((tail.segment_base_lsn, tail.loglet_id, tail.sealed), (Lsn(6), next_loglet_id, false));

    let description = bifrost.describe(LOG).await.unwrap();
    assert_eq!(description.segments.len(), 2);
    let (first, second) = (&description.segments[0], &description.segments[1]);
    assert!(first.sealed);
    assert_eq!((first.base_lsn, first.tail), (Lsn(1), Some(Lsn(6))));
    assert!(!second.sealed);
    assert_eq!((second.base_lsn, second.tail, second.loglet_id), (Lsn(6), Some(Lsn(11)), next_loglet_id));
    assert_eq!((description.tail, description.trim_point), (Some(Lsn(11)), Some(Lsn(0))));
    assert!(description.segments.iter().all(|s| s.unavailable.is_none()));

    // Repeating the same reconfiguration on a tail without records adds nothing.
    let empty_tail = bifrost.seal_and_extend(LogId(1), LogProviderKind::Local, 1, vec![N1]).await.unwrap();
    assert_eq!(empty_tail, logs.logs[&LogId(1)].segments[0]);
    assert_eq!(bifrost.list().await.unwrap(), vec![LogId(0), LogId(1)]);
}

#[tokio::test]
async fn history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = provisioned(&dir, &local_logs(1)).await;
        write_two_segments(&node.bifrost).await;
    }
    let node = open(&dir);
    assert_two_segment_history(&node.bifrost).await;
    assert_eq!(node.bifrost.append(LOG, vec![payload(11)]).await.unwrap(), Lsn(11));
    assert!(node.bifrost.describe(LOG).await.unwrap().segments[0].sealed);
}

#[tokio::test]
async fn trims_cross_segments_report_gaps_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = provisioned(&dir, &local_logs(1)).await;
        let bifrost = &node.bifrost;
        write_two_segments(bifrost).await;
        assert_eq!(bifrost.trim_point(LOG).await.unwrap(), Lsn(0));
        assert_eq!(bifrost.trim(LOG, Lsn(7)).await.unwrap(), Lsn(7));
        assert_eq!(bifrost.trim_point(LOG).await.unwrap(), Lsn(7));
        // Lower trim points change nothing.
        assert_eq!(bifrost.trim(LOG, Lsn(3)).await.unwrap(), Lsn(7));
    }
    let node = open(&dir);
    let bifrost = &node.bifrost;
    assert_eq!(bifrost.trim_point(LOG).await.unwrap(), Lsn(7));

    let batch = bifrost.read(LOG, Lsn(1), 10).await.unwrap();
    assert_eq!(batch.trim_gap, Some(TrimGap { from: Lsn(1), to: Lsn(7) }));
    assert_eq!(lsns(&batch.records), vec![8, 9, 10]);
    assert!(batch.records.iter().all(|r| r.payload == payload(r.lsn.0)));
    let batch = bifrost.read(LOG, Lsn(7), 1).await.unwrap();
    assert_eq!(batch.trim_gap, Some(TrimGap { from: Lsn(7), to: Lsn(7) }));
    assert_eq!(lsns(&batch.records), vec![8]);

    let description = bifrost.describe(LOG).await.unwrap();
    assert_eq!(description.segments[0].trim_point, Some(Lsn(5)));
    assert_eq!(description.segments[1].trim_point, Some(Lsn(7)));
    assert_eq!(description.trim_point, Some(Lsn(7)));

    let err = bifrost.trim(LOG, Lsn(11)).await.unwrap_err();
    assert!(
        matches!(&err, BifrostError::InvalidInput(msg) if msg.contains("LSN 11") && msg.contains("LSN 10")),
        "{err}"
    );
    assert_eq!(bifrost.trim_point(LOG).await.unwrap(), Lsn(7));

    // Trimming everything keeps the tail, and appends go on from it.
    assert_eq!(bifrost.trim(LOG, Lsn(10)).await.unwrap(), Lsn(10));
    assert_eq!(bifrost.find_tail(LOG).await.unwrap().next_lsn, Lsn(11));
    assert_eq!(bifrost.append(LOG, vec![payload(11)]).await.unwrap(), Lsn(11));
    let batch = bifrost.read(LOG, Lsn(1), 10).await.unwrap();
    assert_eq!(batch.trim_gap, Some(TrimGap { from: Lsn(1), to: Lsn(10) }));
    assert_eq!(lsns(&batch.records), vec![11]);

    let err = bifrost.read(LogId(7), Lsn(1), 10).await.unwrap_err();
    assert_eq!(err, BifrostError::UnknownLog(LogId(7)));
    assert_eq!(err.to_string(), "log 7 does not exist; `restatectl logs list` shows the logs");
    assert_eq!(bifrost.append(LogId(7), vec![payload(1)]).await.unwrap_err(), BifrostError::UnknownLog(LogId(7)));
    assert_eq!(bifrost.trim(LogId(7), Lsn(1)).await.unwrap_err(), BifrostError::UnknownLog(LogId(7)));
}

#[tokio::test]
async fn trimming_an_empty_log_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &local_logs(1)).await;
    let err = node.bifrost.trim(LOG, Lsn(1)).await.unwrap_err();
    assert!(matches!(&err, BifrostError::InvalidInput(msg) if msg.contains("no records")), "{err}");
    assert_eq!(node.bifrost.trim(LOG, Lsn(0)).await.unwrap(), Lsn(0));
    let err = node.bifrost.append(LOG, Vec::new()).await.unwrap_err();
    assert!(matches!(&err, BifrostError::InvalidInput(msg) if msg.contains("empty")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_unique_gap_free_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &local_logs(1)).await;
    let (tasks, per_task) = (4u64, 25u64);
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let bifrost = Arc::clone(&node.bifrost);
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..per_task {
                    let n = task * 1000 + i;
                    got.push((bifrost.append(LOG, vec![payload(n)]).await.unwrap(), n));
                }
                got
            })
        })
        .collect();
    let mut assigned = BTreeMap::new();
    for handle in handles {
        for (lsn, n) in handle.await.unwrap() {
            assert!(assigned.insert(lsn, n).is_none(), "LSN {lsn} handed out twice");
        }
    }
    assert_eq!(assigned.keys().map(|l| l.0).collect::<Vec<_>>(), (1..=tasks * per_task).collect::<Vec<_>>());
    let (_, records) = read_all(&node.bifrost, Lsn(1)).await;
    assert_eq!(records.len() as u64, tasks * per_task);
    assert!(records.iter().all(|r| r.payload == payload(assigned[&r.lsn])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_racing_seals_land_exactly_once() {
    const SEALS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &local_logs(1)).await;
    let sealing_done = Arc::new(AtomicBool::new(false));
    // Appenders run until every seal is done (and at least a few rounds), so each seal
    // lands among appends and appends follow it.
    let handles: Vec<_> = (0..4u64)
        .map(|task| {
            let (bifrost, sealing_done) = (Arc::clone(&node.bifrost), Arc::clone(&sealing_done));
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut i = 0;
                while i < 5 || !sealing_done.load(Ordering::Acquire) {
                    // Two-record batches: a batch is never split across segments.
                    let (a, b) = (task * 100_000 + 2 * i, task * 100_000 + 2 * i + 1);
                    let last = bifrost.append(LOG, vec![payload(a), payload(b)]).await.unwrap();
                    got.push((last.prev(), a));
                    got.push((last, b));
                    i += 1;
                }
                got
            })
        })
        .collect();
    // Seals come from another task, through a second Bifrost on the same node (same store
    // and loglet handles) whose metadata cache the appenders' Bifrost does not share: the
    // appenders only learn of each new segment by meeting the sealed old one.
    let sealer = Bifrost::new(MetadataView::new(node.store.clone()), node.provider.clone());
    let sealing = tokio::spawn(async move {
        let mut bases = Vec::new();
        for _ in 0..SEALS {
            let since = bases.last().copied().unwrap_or(Lsn(1));
            while sealer.find_tail(LOG).await.unwrap().next_lsn.0 < since.0 + 10 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            bases.push(sealer.seal_and_extend(LOG, LogProviderKind::Local, 1, vec![N1]).await.unwrap().base_lsn);
        }
        sealing_done.store(true, Ordering::Release);
        bases
    });
    let bases = sealing.await.unwrap();

    let mut assigned = BTreeMap::new();
    for handle in handles {
        for (lsn, n) in handle.await.unwrap() {
            assert!(assigned.insert(lsn, n).is_none(), "LSN {lsn} handed out twice");
        }
    }
    let total = assigned.len() as u64;
    assert_eq!(assigned.keys().map(|l| l.0).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    assert!(bases.windows(2).all(|w| w[0] < w[1]) && bases[SEALS - 1].0 <= total, "{bases:?} (total {total})");

    let (gaps, records) = read_all(&node.bifrost, Lsn(1)).await;
    assert!(gaps.is_empty());
    assert_eq!(lsns(&records), (1..=total).collect::<Vec<_>>());
    let mut seen = HashSet::new();
    for record in &records {
        assert_eq!(record.payload, payload(assigned[&record.lsn]));
        assert!(seen.insert(record.payload.clone()), "payload at LSN {} read twice", record.lsn);
    }
    let description = node.bifrost.describe(LOG).await.unwrap();
    assert_eq!(description.segments.len(), SEALS + 1, "{description:?}");
    assert_eq!(description.segments[1..].iter().map(|s| s.base_lsn).collect::<Vec<_>>(), bases);
    assert!(description.segments[..SEALS].iter().all(|s| s.sealed));
    assert_eq!(description.tail, Some(Lsn(total + 1)));
}

#[tokio::test]
async fn a_replicated_tail_is_unavailable_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &local_logs(1)).await;
    let bifrost = &node.bifrost;
    bifrost.append(LOG, payloads(1..=3)).await.unwrap();
    let segment = bifrost.seal_and_extend(LOG, LogProviderKind::Replicated, 2, Vec::new()).await.unwrap();
    assert_eq!((segment.base_lsn, segment.kind), (Lsn(4), LogProviderKind::Replicated));

    let err = bifrost.append(LOG, vec![payload(4)]).await.unwrap_err();
    let BifrostError::Unavailable(msg) = &err else { panic!("expected Unavailable, got {err:?}") };
    assert!(msg.contains("replicated loglets are not available on this node yet"), "{msg}");
    assert!(msg.contains("log 0") && msg.contains("LSN 4") && msg.contains(&segment.loglet_id.to_string()), "{msg}");
    assert!(matches!(bifrost.find_tail(LOG).await, Err(BifrostError::Unavailable(_))));

    // The local history stays readable; the batch stops before the unreachable segment.
    let batch = bifrost.read(LOG, Lsn(1), 10).await.unwrap();
    assert_eq!(lsns(&batch.records), vec![1, 2, 3]);
    assert_eq!(batch.next_lsn, Lsn(4));
    assert!(matches!(bifrost.read(LOG, Lsn(4), 10).await, Err(BifrostError::Unavailable(_))));

    let description = bifrost.describe(LOG).await.unwrap();
    assert_eq!(description.segments[0].tail, Some(Lsn(4)));
    assert_eq!(description.tail, None);
    assert!(description.segments[1].unavailable.as_deref().unwrap().contains("replicated loglets"));
    // The trim point depends only on the reachable first segment.
    assert_eq!(description.trim_point, Some(Lsn(0)));

    // A log provisioned replicated from the start.
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &Logs::initial(1, LogProviderKind::Replicated, 2, Vec::new())).await;
    let err = node.bifrost.append(LOG, vec![payload(1)]).await.unwrap_err();
    assert!(err.to_string().contains("replicated loglets are not available on this node yet"), "{err}");
}

#[tokio::test]
async fn local_segments_of_other_nodes_are_not_opened_here() {
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &Logs::initial(1, LogProviderKind::Local, 1, vec![PlainNodeId(2)])).await;
    let err = node.bifrost.append(LOG, vec![payload(1)]).await.unwrap_err();
    assert!(
        matches!(&err, BifrostError::Unavailable(msg) if msg.contains("[N2]") && msg.contains("this node is N1")),
        "{err}"
    );
    let err = node.bifrost.seal_and_extend(LOG, LogProviderKind::Local, 1, Vec::new()).await.unwrap_err();
    assert!(matches!(&err, BifrostError::InvalidInput(msg) if msg.contains("exactly one node")), "{err}");
}

#[tokio::test]
async fn concurrent_seal_and_extends_add_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let node = provisioned(&dir, &local_logs(1)).await;
    node.bifrost.append(LOG, payloads(1..=2)).await.unwrap();
    let (a, b) = tokio::join!(
        node.bifrost.seal_and_extend(LOG, LogProviderKind::Local, 1, vec![N1]),
        node.bifrost.seal_and_extend(LOG, LogProviderKind::Local, 1, vec![N1]),
    );
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(node.bifrost.describe(LOG).await.unwrap().segments.len(), 2);
    // A store without Logs knows no logs.
    let dir = tempfile::tempdir().unwrap();
    let empty = open(&dir);
    assert!(empty.bifrost.list().await.unwrap().is_empty());
    assert_eq!(empty.bifrost.find_tail(LOG).await.unwrap_err(), BifrostError::UnknownLog(LOG));
}
