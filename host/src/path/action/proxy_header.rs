//! PROXY protocol headers (v1 text, v2 binary) written before the client's
//! bytes, built with the `ppp` crate.

use std::net::SocketAddr;

use ppp::v2::{Builder, Command, Protocol, Type, Version};

use crate::decision::{PP2_TYPE_LIMEN_JA4, ProxyTlvs, ProxyVersion, Upstream};
use crate::hello::HelloSummary;
use crate::policy::Connection;

/// The PROXY header `upstream` asked for (empty if none), with the TLVs it
/// asked for: the SNI of `hello`, `alpn`, and the JA4 of `hello`, which is
/// computed only if the header carries it.
pub(crate) fn for_upstream(
    upstream: &Upstream,
    conn: &Connection,
    hello: Option<&HelloSummary>,
    alpn: Option<&[u8]>,
) -> Vec<u8> {
    let Some(version) = upstream.proxy_protocol else {
        return Vec::new();
    };
    let tlvs = upstream.proxy_tlvs;
    let wants_ja4 = version == ProxyVersion::V2 && tlvs.ja4;
    let values = TlvValues {
        authority: hello.and_then(HelloSummary::sni).map(|n| n.as_ref()),
        alpn,
        ja4: hello
            .filter(|_| wants_ja4)
            .map(|h| h.fingerprints().ja4.as_str()),
    };
    build(version, conn.client, conn.local, tlvs, values)
}

/// What the TLVs a decision asked for would carry; absent values are
/// simply not written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TlvValues<'a> {
    pub(crate) authority: Option<&'a str>,
    pub(crate) alpn: Option<&'a [u8]>,
    pub(crate) ja4: Option<&'a str>,
}

/// The header telling the upstream who the client really is (and, for v2,
/// the TLVs asked for).
pub(crate) fn build(
    version: ProxyVersion,
    client: SocketAddr,
    local: SocketAddr,
    tlvs: ProxyTlvs,
    values: TlvValues<'_>,
) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::from((client, local))
            .to_string()
            .into_bytes(),
        ProxyVersion::V2 => {
            let wanted = [
                (
                    tlvs.authority,
                    u8::from(Type::Authority),
                    values.authority.map(str::as_bytes),
                ),
                (tlvs.alpn, u8::from(Type::ALPN), values.alpn),
                (tlvs.ja4, PP2_TYPE_LIMEN_JA4, values.ja4.map(str::as_bytes)),
            ];
            let present = wanted
                .into_iter()
                .filter_map(|(on, kind, value)| Some((kind, value.filter(|_| on)?)));
            // Only a header over 64 KiB fails to build, and SNI (≤ 253
            // bytes), ALPN (≤ 255) and JA4 (36) are far from it; should it
            // ever fail, the addresses alone still go.
            v2(client, local, present)
                .or_else(|_| v2(client, local, std::iter::empty()))
                .unwrap_or_default()
        }
    }
}

fn v2<'a>(
    client: SocketAddr,
    local: SocketAddr,
    tlvs: impl Iterator<Item = (u8, &'a [u8])>,
) -> std::io::Result<Vec<u8>> {
    let mut header = Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (client, local),
    );
    for (kind, value) in tlvs {
        header = header.write_tlv(kind, value)?;
    }
    header.build()
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
        let none = (ProxyTlvs::default(), TlvValues::default());
        let v1 = build(ProxyVersion::V1, c, l, none.0, none.1);
        assert_eq!(v1, b"PROXY TCP4 192.0.2.1 127.0.0.1 50000 8443\r\n");
        let v2 = build(ProxyVersion::V2, c, l, none.0, none.1);
        let parsed = ppp::v2::Header::try_from(v2.as_slice()).unwrap();
        assert_eq!(parsed.addresses, ppp::v2::Addresses::from((c, l)));
    }
}
