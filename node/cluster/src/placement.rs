//! Choosing log-servers for a segment: spread segments over the log-servers, least
//! loaded first.

use std::collections::BTreeMap;

use restate_metadata::objects::{ClusterConfiguration, Logs, NodesConfiguration};
use restate_types::{LogProviderKind, PlainNodeId};

/// How many writable (tail) replicated segments each node is in.
pub fn tail_load(logs: &Logs) -> BTreeMap<PlainNodeId, usize> {
    let mut load = BTreeMap::new();
    for chain in logs.logs.values() {
        let Some(tail) = chain.segments.last() else { continue };
        if tail.kind == LogProviderKind::Replicated {
            for node in &tail.nodeset {
                *load.entry(*node).or_insert(0) += 1;
            }
        }
    }
    load
}

/// `2r-1` of `candidates` for replication `r`: the least loaded, ties broken by node id
/// (deterministic, so concurrent placers agree); sorted by id. `None` if there are too
/// few candidates.
pub fn choose_nodeset(
    candidates: &[PlainNodeId],
    load: &BTreeMap<PlainNodeId, usize>,
    replication: u32,
) -> Option<Vec<PlainNodeId>> {
    let needed = ClusterConfiguration::log_servers_needed(replication) as usize;
    pick(candidates, load, needed)
}

/// Where every log continues after the cluster configuration changed to `configuration`
/// (`restatectl config set`): replicated logs on `2r-1` of the registered log-servers
/// (empty when there are too few: the controller places them later); local logs on the
/// node that made the change, `this_node`.
pub fn reconfiguration_nodeset(
    configuration: &ClusterConfiguration,
    nodes: &NodesConfiguration,
    this_node: PlainNodeId,
) -> Vec<PlainNodeId> {
    match configuration.log_provider {
        LogProviderKind::Replicated => {
            let log_servers: Vec<PlainNodeId> = nodes.log_servers().map(|n| n.id).collect();
            choose_nodeset(&log_servers, &BTreeMap::new(), configuration.replication).unwrap_or_default()
        }
        LogProviderKind::Local => vec![this_node],
    }
}

/// The `n` least loaded of `candidates` (ties by id), sorted by id.
pub(crate) fn pick(
    candidates: &[PlainNodeId],
    load: &BTreeMap<PlainNodeId, usize>,
    n: usize,
) -> Option<Vec<PlainNodeId>> {
    if candidates.len() < n {
        return None;
    }
    let mut ranked = candidates.to_vec();
    ranked.sort_by_key(|node| (load.get(node).copied().unwrap_or(0), *node));
    ranked.dedup();
    let mut chosen: Vec<PlainNodeId> = ranked.into_iter().take(n).collect();
    chosen.sort();
    (chosen.len() == n).then_some(chosen)
}

/// Records that `nodeset` got one more tail segment (so the next choice spreads).
pub(crate) fn add_load(load: &mut BTreeMap<PlainNodeId, usize>, nodeset: &[PlainNodeId]) {
    for node in nodeset {
        *load.entry(*node).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u32]) -> Vec<PlainNodeId> {
        v.iter().map(|i| PlainNodeId(*i)).collect()
    }

    #[test]
    fn nodesets_need_2r_minus_1_candidates() {
        let load = BTreeMap::new();
        assert_eq!(choose_nodeset(&ids(&[1, 2]), &load, 1), Some(ids(&[1])));
        assert_eq!(choose_nodeset(&ids(&[1, 2]), &load, 2), None);
        assert_eq!(choose_nodeset(&ids(&[3, 1, 2]), &load, 2), Some(ids(&[1, 2, 3])));
    }

    #[test]
    fn least_loaded_nodes_are_chosen_first() {
        let mut load = BTreeMap::new();
        let candidates = ids(&[1, 2, 3, 4, 5]);
        let mut chosen = Vec::new();
        for _ in 0..5 {
            let nodeset = choose_nodeset(&candidates, &load, 2).unwrap();
            add_load(&mut load, &nodeset);
            chosen.push(nodeset);
        }
        // 15 memberships over 5 nodes: every node gets exactly 3.
        assert!(load.values().all(|n| *n == 3), "{load:?} from {chosen:?}");
    }
}
