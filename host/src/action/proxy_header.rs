//! PROXY protocol headers (v1 text, v2 binary) written before the client's
//! bytes, built with the `ppp` crate.

use std::net::SocketAddr;

use ppp::v2::{Builder, Command, Protocol, Version};

use crate::decision::ProxyVersion;

/// The header telling the upstream who the client really is.
pub(crate) fn build(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::from((client, local))
            .to_string()
            .into_bytes(),
        // Building only fails for oversized TLVs, and there are none here.
        ProxyVersion::V2 => Builder::with_addresses(
            Version::Two | Command::Proxy,
            Protocol::Stream,
            (client, local),
        )
        .build()
        .unwrap_or_default(),
    }
}

/// A dual-stack listener reports IPv4 clients as IPv4-mapped IPv6; write them
/// as IPv4 so the upstream sees the address it would see directly.
fn same_family(client: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
    let unmap = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    match (unmap(client), unmap(local)) {
        (c @ SocketAddr::V4(_), l @ SocketAddr::V4(_)) => (c, l),
        _ => (client, local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers() {
        let c: SocketAddr = "192.0.2.1:50000".parse().unwrap();
        let l: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let v1 = build(ProxyVersion::V1, c, l);
        assert_eq!(v1, b"PROXY TCP4 192.0.2.1 127.0.0.1 50000 8443\r\n");
        let v2 = build(ProxyVersion::V2, c, l);
        let parsed = ppp::v2::Header::try_from(v2.as_slice()).unwrap();
        assert_eq!(parsed.addresses, ppp::v2::Addresses::from((c, l)));
    }
}
