//! Channels to other nodes kept by address: made on first use ([`crate::channel::lazy_channel`],
//! connection attempts bounded end to end) and reused, so a call does not pay a new
//! connection, and a channel whose peer died reconnects by itself when the peer is back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::Endpoint;

use crate::channel::NodeChannel;

pub struct ChannelCache {
    connect_timeout: Duration,
    channels: Mutex<HashMap<String, NodeChannel>>,
}

impl ChannelCache {
    /// Channels whose TCP connects each take at most `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> ChannelCache {
        ChannelCache { connect_timeout, channels: Mutex::new(HashMap::new()) }
    }

    /// The channel of `address`; an address that is not a URI is an error naming it.
    pub fn get(&self, address: &str) -> Result<NodeChannel, String> {
        let mut channels = self.channels.lock().expect("not poisoned");
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| format!("node address '{address}' is not a URI: {e}"))?;
        let channel = crate::channel::lazy_channel(endpoint, self.connect_timeout);
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// How many addresses have a channel.
    pub fn len(&self) -> usize {
        self.channels.lock().expect("not poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_channel_per_address_and_bad_addresses_are_named() {
        let cache = ChannelCache::new(Duration::from_secs(1));
        assert!(cache.is_empty());
        cache.get("http://127.0.0.1:1").unwrap();
        cache.get("http://127.0.0.1:1").unwrap();
        cache.get("http://127.0.0.1:2").unwrap();
        assert_eq!(cache.len(), 2);
        let err = cache.get("not a uri").unwrap_err();
        assert!(err.contains("'not a uri'"), "{err}");
        assert_eq!(cache.len(), 2, "a bad address gets no channel");
    }
}
