//! Pod IP allocation from the docker network's subnet.
//!
//! Contract: the kubelet picks each pod's address before the container exists (env
//! `status.podIP` needs it) and runs the container with `--ip`. Docker's own allocator hands
//! out addresses from the bottom of the subnet to containers started without `--ip`, so pod
//! addresses come from the upper half first. An address is free when no container on the
//! network has it, no container of any test kubelet records it in its `LABEL_IP` label
//! (stopped containers get their address back on `docker start`) and no pod of this process
//! holds it.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::{anyhow, Result};
use tokio::sync::Mutex;

use crate::docker;

pub struct Ipam {
    network: String,
    subnet: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    /// Held by pods of this process; the lock also serialises allocations.
    held: Mutex<HashSet<Ipv4Addr>>,
}

impl Ipam {
    pub fn new(network: &str, info: &docker::NetworkInfo) -> Self {
        Ipam {
            network: network.to_owned(),
            subnet: info.subnet,
            prefix: info.prefix,
            gateway: info.gateway,
            held: Mutex::new(HashSet::new()),
        }
    }

    pub async fn allocate(&self) -> Result<Ipv4Addr> {
        let mut held = self.held.lock().await;
        let mut used: HashSet<Ipv4Addr> = held.clone();
        used.extend(docker::network(&self.network).await?.attached);
        used.extend(docker::labelled_ips().await?);
        let ip = pick(self.subnet, self.prefix, self.gateway, &used)
            .ok_or_else(|| anyhow!("no free address left in {}/{}", self.subnet, self.prefix))?;
        held.insert(ip);
        Ok(ip)
    }

    /// Marks an address found on an existing container (kubelet restart) as held.
    pub async fn hold(&self, ip: Ipv4Addr) {
        self.held.lock().await.insert(ip);
    }

    pub async fn release(&self, ip: Ipv4Addr) {
        self.held.lock().await.remove(&ip);
    }
}

/// The first free host address of the subnet's upper half (from `<half>.1`), then of its lower
/// half; never the network address, the broadcast address or the gateway.
pub fn pick(subnet: Ipv4Addr, prefix: u8, gateway: Ipv4Addr, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let size = 1u64 << (32 - u32::from(prefix));
    let base = u64::from(u32::from(subnet)) & !(size - 1);
    let half = size / 2;
    (half + 1..size - 1)
        .chain(1..=half)
        .map(|offset| Ipv4Addr::from((base + offset) as u32))
        .find(|ip| *ip != gateway && !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_from_the_upper_half_skipping_used_addresses() {
        let subnet = Ipv4Addr::new(172, 30, 0, 0);
        let gateway = Ipv4Addr::new(172, 30, 0, 1);
        let mut used = HashSet::new();
        assert_eq!(pick(subnet, 16, gateway, &used), Some(Ipv4Addr::new(172, 30, 128, 1)));
        used.insert(Ipv4Addr::new(172, 30, 128, 1));
        assert_eq!(pick(subnet, 16, gateway, &used), Some(Ipv4Addr::new(172, 30, 128, 2)));
    }

    #[test]
    fn falls_back_to_the_lower_half_and_runs_out() {
        let subnet = Ipv4Addr::new(10, 0, 0, 0);
        let gateway = Ipv4Addr::new(10, 0, 0, 1);
        // /30: hosts .1 (gateway) and .2.
        let mut used = HashSet::new();
        assert_eq!(pick(subnet, 30, gateway, &used), Some(Ipv4Addr::new(10, 0, 0, 2)));
        used.insert(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(pick(subnet, 30, gateway, &used), None);
        // /29: upper half .5 .6, then .1 (gateway, skipped) .2 .3 .4.
        let used: HashSet<_> = (5..7).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(pick(subnet, 29, gateway, &used), Some(Ipv4Addr::new(10, 0, 0, 2)));
    }
}
