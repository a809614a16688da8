use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::startup_error::StartupError;

/// One network listener of the node, with the config key that sets its address.
pub(crate) struct BoundListener {
    pub listener: TcpListener,
    pub local_addr: SocketAddr,
}

/// Binds `addr`; a failure names `key` (and its environment variable) so the user knows
/// what to change.
pub(crate) async fn bind(
    key: &'static str,
    what: &'static str,
    addr: SocketAddr,
) -> Result<BoundListener, StartupError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { key, what, addr, source })?;
    let local_addr = listener.local_addr().map_err(|source| StartupError::Bind { key, what, addr, source })?;
    Ok(BoundListener { listener, local_addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_in_use_names_the_key_to_change() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind("admin.bind-address", "admin API", addr).await.err().unwrap().to_string();
        assert!(err.contains("admin.bind-address") && err.contains("RESTATE_ADMIN__BIND_ADDRESS"), "{err}");
        assert!(err.contains(&addr.to_string()), "{err}");
    }
}
