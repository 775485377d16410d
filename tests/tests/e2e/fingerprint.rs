//! Fingerprints at work: the `ja4-gate` guest deciding on JA4, and the PROXY
//! v2 TLVs (SNI, ALPN, JA4) read back by a PROXY protocol parser (`ppp`).

use limen::decision::PP2_TYPE_LIMEN_JA4;
use limen::hello::{HelloSummary, Progress, frame};
use limen_e2e::harness::{Running, config};
use limen_e2e::{backend, guests};
use ppp::v2::{Header, Type};

use crate::common::{WAIT, ask, hello};

/// The JA4 limen computes for a hello, as the policy sees it.
fn ja4_of(bytes: &[u8]) -> String {
    let Ok(Progress::Complete(framed)) = frame(bytes, 1 << 16) else {
        panic!("not a whole hello");
    };
    let summary = HelloSummary::parse(&framed).expect("parses");
    summary.fingerprints().ja4.clone()
}

/// A rustls client and an OpenSSL one (the recorded peerbench hello) differ
/// in JA4: denying the rustls prefix refuses only it, with `access_denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ja4_gate_refuses_listed_prefixes_and_routes_the_rest() -> anyhow::Result<()> {
    let (a, _) = backend::raw(b"A").await?;
    let rustls = limen::offline::explain::synthesise("a.test", &[])?;
    let openssl = hello("small-a.test.bin");
    let (rustls_ja4, openssl_ja4) = (ja4_of(&rustls), ja4_of(&openssl));
    assert_ne!(
        rustls_ja4[..22],
        openssl_ja4[..22],
        "the clients must differ"
    );
    // Denied by its first two parts: version, counts, ALPN and cipher hash.
    let prefix = &rustls_ja4[..22];
    let policy = format!(
        r#"deny = ["{prefix}", "t10"]
routes = [{{ match = "a.test", upstream = "{a}" }}]"#
    );
    let toml = config(&guests::example("ja4-gate"), &policy, "", "");
    let limen = Running::start(&toml).await?;
    let access_denied = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 49];
    assert_eq!(ask(limen.addr, &rustls).await?, access_denied);
    assert_eq!(ask(limen.addr, &openssl).await?, b"A");
    limen.stop().await
}

/// `proxy_tlvs = ["authority", "alpn", "ja4"]`: the upstream reads the SNI,
/// the client's first ALPN protocol and the JA4 from the v2 header, then
/// the ClientHello byte for byte. Without `proxy_tlvs`, no TLV is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_v2_tlvs_carry_sni_alpn_and_ja4() -> anyhow::Result<()> {
    let (up, mut seen) = backend::raw(b"U").await?;
    let policy = format!(
        r#"routes = [
  {{ match = "tlv.test", upstream = "{up}", proxy_protocol = "v2", proxy_tlvs = ["authority", "alpn", "ja4"] }},
  {{ match = "plain.test", upstream = "{up}", proxy_protocol = "v2" }},
]"#
    );
    let toml = config(&guests::example("static-routes"), &policy, "", "");
    let limen = Running::start(&toml).await?;

    let sent = limen::offline::explain::synthesise("tlv.test", &["h2".into(), "http/1.1".into()])?;
    assert_eq!(ask(limen.addr, &sent).await?, b"U");
    let received = tokio::time::timeout(WAIT, seen.recv())
        .await?
        .expect("report");
    let header = Header::try_from(received.bytes.as_slice())?;
    let tlvs: Vec<(u8, Vec<u8>)> = header
        .tlvs()
        .map(|tlv| tlv.map(|t| (t.kind, t.value.to_vec())))
        .collect::<Result<_, _>>()?;
    let value = |kind: u8| {
        tlvs.iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(
        value(u8::from(Type::Authority)).as_deref(),
        Some("tlv.test")
    );
    assert_eq!(value(u8::from(Type::ALPN)).as_deref(), Some("h2"));
    assert_eq!(value(PP2_TYPE_LIMEN_JA4), Some(ja4_of(&sent)));
    assert_eq!(tlvs.len(), 3, "{tlvs:?}");
    assert_eq!(&received.bytes[header.len()..], sent.as_slice());

    let sent = limen::offline::explain::synthesise("plain.test", &["h2".into()])?;
    assert_eq!(ask(limen.addr, &sent).await?, b"U");
    let received = tokio::time::timeout(WAIT, seen.recv())
        .await?
        .expect("report");
    let header = Header::try_from(received.bytes.as_slice())?;
    assert_eq!(header.tlvs().count(), 0);
    assert_eq!(&received.bytes[header.len()..], sent.as_slice());
    limen.stop().await
}
