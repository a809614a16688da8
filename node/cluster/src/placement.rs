//! Choosing log-servers for a segment: spread segments over the log-servers, least
//! loaded first, and over regions and zones as the replication property asks.

use std::collections::BTreeMap;

use restate_metadata::objects::{ClusterConfiguration, Logs, NodesConfiguration};
use restate_types::{Location, LocationScope, LogProviderKind, PlainNodeId, ReplicationProperty};

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

/// `2r-1` of `candidates` for the replication property `{..., node: r}`: the least loaded,
/// ties broken by node id (deterministic, so concurrent placers agree), within the
/// property's spread (see [`domain_cap`]); sorted by id. The error is the arithmetic of
/// why the candidates cannot hold it.
pub fn choose_nodeset(
    candidates: &[PlainNodeId],
    nodes: &NodesConfiguration,
    load: &BTreeMap<PlainNodeId, usize>,
    replication: ReplicationProperty,
) -> Result<Vec<PlainNodeId>, String> {
    let needed = ClusterConfiguration::log_servers_needed(replication.node) as usize;
    let spread = replication.spread();
    let mut ranked = candidates.to_vec();
    ranked.sort_by_key(|node| (load.get(node).copied().unwrap_or(0), *node));
    ranked.dedup();
    let mut chosen = Vec::new();
    let mut per_domain: BTreeMap<(LocationScope, String), u32> = BTreeMap::new();
    for node in ranked {
        if chosen.len() == needed {
            break;
        }
        let location = location_of(nodes, node);
        let fits = spread.iter().all(|(scope, _)| {
            per_domain.get(&(*scope, location.domain(*scope))).copied().unwrap_or(0) < domain_cap(replication, *scope)
        });
        if fits {
            for (scope, _) in &spread {
                *per_domain.entry((*scope, location.domain(*scope))).or_insert(0) += 1;
            }
            chosen.push(node);
        }
    }
    if chosen.len() < needed {
        return Err(unplaceable(candidates, nodes, replication));
    }
    chosen.sort();
    Ok(chosen)
}

/// How many members of one nodeset a single domain (region or zone) may hold under
/// `replication`: with `r` copies spread over `s` domains, any `s - 1` domains together
/// hold at most `r - 1` of the `2r - 1` members, so every quorum of `r` spans `s` domains
/// and losing `s - 1` of them leaves a quorum. `u32::MAX` where the scope has no spread.
pub fn domain_cap(replication: ReplicationProperty, scope: LocationScope) -> u32 {
    match replication.spread().into_iter().find(|(s, _)| *s == scope) {
        Some((_, spread)) => replication.node.saturating_sub(1) / (spread - 1),
        None => u32::MAX,
    }
}

/// Whether `nodeset` keeps `replication`'s spread (every domain within its cap).
pub fn keeps_spread(nodeset: &[PlainNodeId], nodes: &NodesConfiguration, replication: ReplicationProperty) -> bool {
    replication.spread().iter().all(|(scope, _)| {
        let counts = domain_counts(nodeset, nodes, *scope);
        counts.values().all(|n| *n <= domain_cap(replication, *scope))
    })
}

/// A node's location as registered (empty when it gave none or is unknown).
pub fn location_of(nodes: &NodesConfiguration, node: PlainNodeId) -> Location {
    nodes.nodes.get(&node).map(|n| n.location.clone()).unwrap_or_default()
}

fn domain_counts(members: &[PlainNodeId], nodes: &NodesConfiguration, scope: LocationScope) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for node in members {
        *counts.entry(location_of(nodes, *node).domain(scope)).or_insert(0) += 1;
    }
    counts
}

/// Why `candidates` cannot hold a nodeset for `replication`, with the arithmetic.
fn unplaceable(candidates: &[PlainNodeId], nodes: &NodesConfiguration, replication: ReplicationProperty) -> String {
    let needed = ClusterConfiguration::log_servers_needed(replication.node);
    let r = replication.node;
    let mut message = format!(
        "replication {replication} needs {needed} log-servers (2 x {r} - 1) but {} {} available",
        candidates.len(),
        if candidates.len() == 1 { "is" } else { "are" }
    );
    for (scope, spread) in replication.spread() {
        let cap = domain_cap(replication, scope);
        let counts = domain_counts(candidates, nodes, scope);
        let usable: u32 = counts.values().map(|n| (*n).min(cap)).sum();
        if usable >= needed && candidates.len() as u32 >= needed {
            continue;
        }
        let listed: Vec<String> = counts
            .iter()
            .map(|(domain, n)| format!("{} ({n})", if domain.is_empty() { "no location" } else { domain }))
            .collect();
        message = format!(
            "replication {replication} needs {needed} log-servers (2 x {r} - 1) with at most {cap} in any {name} \
             (any {r} copies must span {spread} {name}s): the {} available are in {} {name}(s): {}, so at most \
             {usable} can be placed; add log-servers in {} more {name}(s) or lower the {name} count",
            candidates.len(),
            counts.len(),
            listed.join(", "),
            needed.saturating_sub(usable).div_ceil(cap.max(1)),
            name = scope.as_str(),
        );
        break;
    }
    message
}

/// Where every log continues after the cluster configuration changed to `configuration`
/// (`restatectl config set`): replicated logs on `2r-1` of the registered log-servers
/// (empty when they cannot hold it: the controller places them later); local logs on the
/// node that made the change, `this_node`.
pub fn reconfiguration_nodeset(
    configuration: &ClusterConfiguration,
    nodes: &NodesConfiguration,
    this_node: PlainNodeId,
) -> Vec<PlainNodeId> {
    match configuration.log_provider {
        LogProviderKind::Replicated => {
            let log_servers: Vec<PlainNodeId> = nodes.log_servers().map(|n| n.id).collect();
            choose_nodeset(&log_servers, nodes, &BTreeMap::new(), configuration.replication).unwrap_or_default()
        }
        LogProviderKind::Local => vec![this_node],
    }
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
    use restate_types::RoleSet;

    fn ids(v: &[u32]) -> Vec<PlainNodeId> {
        v.iter().map(|i| PlainNodeId(*i)).collect()
    }

    /// Nodes 1..=n, node i in zone `zones[i-1]` of region "r" ("" = no location).
    fn located(zones: &[&str]) -> NodesConfiguration {
        let mut nodes = NodesConfiguration::default();
        for (i, zone) in zones.iter().enumerate() {
            let location: Location =
                if zone.is_empty() { Location::default() } else { format!("r.{zone}").parse().unwrap() };
            nodes.register(&format!("n{}", i + 1), "http://x:1", &RoleSet::all(), "s", false, &location);
        }
        nodes
    }

    fn zoned(zone: u32, node: u32) -> ReplicationProperty {
        ReplicationProperty { region: 0, zone, node }
    }

    #[test]
    fn nodesets_need_2r_minus_1_candidates() {
        let load = BTreeMap::new();
        let nodes = located(&["", "", ""]);
        assert_eq!(choose_nodeset(&ids(&[1, 2]), &nodes, &load, ReplicationProperty::nodes(1)), Ok(ids(&[1])));
        let refused = choose_nodeset(&ids(&[1, 2]), &nodes, &load, ReplicationProperty::nodes(2)).unwrap_err();
        assert!(refused.contains("needs 3 log-servers (2 x 2 - 1) but 2 are available"), "{refused}");
        assert_eq!(choose_nodeset(&ids(&[3, 1, 2]), &nodes, &load, ReplicationProperty::nodes(2)), Ok(ids(&[1, 2, 3])));
    }

    #[test]
    fn least_loaded_nodes_are_chosen_first() {
        let mut load = BTreeMap::new();
        let nodes = located(&["", "", "", "", ""]);
        let candidates = ids(&[1, 2, 3, 4, 5]);
        let mut chosen = Vec::new();
        for _ in 0..5 {
            let nodeset = choose_nodeset(&candidates, &nodes, &load, ReplicationProperty::nodes(2)).unwrap();
            add_load(&mut load, &nodeset);
            chosen.push(nodeset);
        }
        // 15 memberships over 5 nodes: every node gets exactly 3.
        assert!(load.values().all(|n| *n == 3), "{load:?} from {chosen:?}");
    }

    #[test]
    fn zone_spread_caps_every_zone_so_any_quorum_spans_two_zones() {
        // Three copies over two zones: 5 members, at most 2 per zone.
        assert_eq!(domain_cap(zoned(2, 3), LocationScope::Zone), 2);
        assert_eq!(domain_cap(zoned(2, 2), LocationScope::Zone), 1);
        assert_eq!(domain_cap(zoned(3, 3), LocationScope::Zone), 1);
        assert_eq!(domain_cap(ReplicationProperty::nodes(3), LocationScope::Zone), u32::MAX);
        // Six nodes in zones a, a, a, b, b, c: the least loaded a-nodes first, but only two.
        let nodes = located(&["a", "a", "a", "b", "b", "c"]);
        let all = ids(&[1, 2, 3, 4, 5, 6]);
        let mut load = BTreeMap::new();
        for _ in 0..6 {
            let nodeset = choose_nodeset(&all, &nodes, &load, zoned(2, 3)).unwrap();
            assert_eq!(nodeset.len(), 5);
            assert!(keeps_spread(&nodeset, &nodes, zoned(2, 3)), "{nodeset:?}");
            let in_a = nodeset.iter().filter(|n| n.0 <= 3).count();
            assert_eq!(in_a, 2, "{nodeset:?}");
            add_load(&mut load, &nodeset);
        }
        // The a-nodes share their 12 memberships; b and c hold every nodeset.
        assert_eq!((load[&PlainNodeId(1)], load[&PlainNodeId(2)], load[&PlainNodeId(3)]), (4, 4, 4));
        assert!(!keeps_spread(&ids(&[1, 2, 3, 4, 5]), &nodes, zoned(2, 3)));
        assert!(keeps_spread(&ids(&[1, 2, 3, 4, 5]), &nodes, ReplicationProperty::nodes(3)));
    }

    #[test]
    fn an_unplaceable_spread_says_the_arithmetic() {
        // Two zones cannot hold {zone: 2, node: 3}: 5 members, at most 2 per zone.
        let nodes = located(&["a", "a", "a", "b", "b"]);
        let refused = choose_nodeset(&ids(&[1, 2, 3, 4, 5]), &nodes, &BTreeMap::new(), zoned(2, 3)).unwrap_err();
        assert!(refused.contains("needs 5 log-servers (2 x 3 - 1) with at most 2 in any zone"), "{refused}");
        assert!(refused.contains("in 2 zone(s): r.a (3), r.b (2), so at most 4 can be placed"), "{refused}");
        assert!(refused.contains("add log-servers in 1 more zone(s)"), "{refused}");
        // Nodes without a location share one domain.
        let unlocated = located(&["", "", ""]);
        let refused = choose_nodeset(&ids(&[1, 2, 3]), &unlocated, &BTreeMap::new(), zoned(2, 2)).unwrap_err();
        assert!(refused.contains("no location (3)"), "{refused}");
    }
}
