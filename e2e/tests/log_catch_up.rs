//! A member added to a loglet that holds 256 MiB of records catches up from the others'
//! disks (no in-memory copy of the loglet anywhere) and serves reads, while appends
//! continue: 4 nodes, replication 2 (a group of 3 plus a spare); a member is killed -9
//! and the controller puts the spare in its place.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, ReadRequest};
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, AppendLogRequest};

const CLUSTER: &str = "catch-up";
const RECORD_BYTES: usize = 256 << 10;
const PREFILL_RECORDS: usize = 1024; // 256 MiB

/// Record `i`: its number, then filler up to `RECORD_BYTES`.
fn record(i: usize) -> Vec<u8> {
    let mut payload = format!("record-{i:06}-").into_bytes();
    payload.resize(RECORD_BYTES, b'a' + (i % 26) as u8);
    payload
}

#[test]
fn a_member_added_to_a_loglet_of_256_mib_catches_up_and_serves_reads_while_appends_continue() {
    let dir = TestDir::new("log-catch-up");
    let LogServersWithSpare { mut nodes, id_of, loglet, nodeset, spare } = LogServersWithSpare::start(&dir, CLUSTER);
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let index_of = |id: &str| names.iter().position(|name| id_of[name.as_str()] == id).unwrap();
    let (entry, victim) = (index_of(&nodeset[0]), index_of(&nodeset[2]));

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let entry_address = nodes[entry].address();
    let started = Instant::now();
    runtime.block_on(async {
        let mut ctl = NodeCtlClient::connect(entry_address.clone()).await.unwrap();
        for batch in 0..PREFILL_RECORDS / 4 {
            let records = (batch * 4..batch * 4 + 4).map(record).collect();
            ctl.append_log(AppendLogRequest { log_id: 0, records }).await.unwrap();
        }
    });
    println!("256 MiB appended in {:?}", started.elapsed());

    // Appends continue through the repair.
    let stop = tokio_util::sync::CancellationToken::new();
    let appender = {
        let (address, stop) = (entry_address.clone(), stop.clone());
        runtime.spawn(async move {
            let mut ctl = NodeCtlClient::connect(address).await.unwrap();
            let mut acked = Vec::new();
            let mut i = PREFILL_RECORDS;
            while !stop.is_cancelled() {
                if let Ok(r) = ctl.append_log(AppendLogRequest { log_id: 0, records: vec![record(i)] }).await {
                    acked.push((r.into_inner().last_lsn, i));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acked
        })
    };

    nodes[victim].kill();
    let dead = id_of[nodes[victim].name.as_str()].clone();
    wait_until("the spare to replace the dead log-server", Duration::from_secs(60), || {
        tail_of_first_log(&nodes[entry])
            .is_some_and(|(l, ns)| l == loglet && ns.contains(&spare) && !ns.contains(&dead))
    });
    let addresses: Vec<String> =
        nodes.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n.address()).collect();
    let caught_up_from = Instant::now();
    wait_until("the spare to catch up and vote", Duration::from_secs(300), || {
        loglet_has_voters(&runtime, &addresses, loglet, 3)
    });
    println!("the spare caught up on 256 MiB and votes {:?} after the repair began", caught_up_from.elapsed());
    stop.cancel();
    let acked = runtime.block_on(appender).unwrap();
    assert!(!acked.is_empty(), "appends continued during the repair");

    // The spare's own replica serves every record, the prefill and what came during the repair.
    let spare_address = nodes[index_of(&spare)].address();
    let read = runtime.block_on(async {
        let mut c = LogServerClient::connect(spare_address).await.unwrap().max_decoding_message_size(64 << 20);
        let mut read = BTreeMap::new();
        let mut next = 1u64;
        loop {
            let request = ReadRequest { loglet_id: loglet, from_lsn: next, max_records: 64, local: false };
            let batch = c.read(request).await.expect("the spare serves reads").into_inner();
            let Some(last) = batch.records.last() else { break };
            next = last.lsn + 1;
            for r in batch.records {
                read.insert(r.lsn, r.payload);
            }
        }
        read
    });
    assert!(read.len() >= PREFILL_RECORDS + acked.len(), "the spare holds {} records", read.len());
    assert_eq!(read.keys().copied().collect::<Vec<_>>(), (1..=read.len() as u64).collect::<Vec<_>>(), "gap");
    let by_number: BTreeMap<usize, &Vec<u8>> = read
        .values()
        .map(|payload| {
            let number = std::str::from_utf8(&payload[7..13]).ok().and_then(|n| n.parse().ok());
            (number.unwrap_or_else(|| panic!("not a record of this test: {:?}", &payload[..16])), payload)
        })
        .collect();
    assert_eq!(by_number.len(), read.len(), "a record appears twice");
    for i in (0..PREFILL_RECORDS).chain(acked.iter().map(|(_, i)| *i)) {
        assert_eq!(by_number.get(&i).map(|p| p.as_slice()), Some(record(i).as_slice()), "record {i} on the spare");
    }
}
