//! ClientHello parsing rules: what the extension walk refuses, what it
//! keeps, and how the summary reads SNI, ALPN and the codepoint lists.

use super::{CAP, Outcome, hello_with, hello_with_tail, outcome, sni_body, summarize};

fn sni_of(name: &[u8]) -> Option<String> {
    let hello = hello_with(Some(&[(0, &sni_body(&[(0, name)]))]));
    summarize(&hello)
        .sni()
        .map(|n| AsRef::<str>::as_ref(n).to_owned())
}

#[test]
fn extension_block_faults_are_malformed() {
    let ok = hello_with(Some(&[(23, b""), (0xff01, b"\x00")]));
    assert!(matches!(outcome(&ok, CAP), Outcome::Parsed(_)));
    let dup = hello_with(Some(&[(23, b""), (0xff01, b"\x00"), (23, b"")]));
    assert_eq!(outcome(&dup, CAP), Outcome::Malformed);
    let tails: [(&str, &[u8]); 5] = [
        ("block overruns message", b"\x00\x10\x00\x17\x00\x00"),
        ("trailing byte", b"\x00\x04\x00\x17\x00\x00\xff"),
        ("extension overruns block", b"\x00\x04\x00\x17\x00\x05"),
        ("extension header cut", b"\x00\x03\x00\x17\x00"),
        ("half a block length", b"\x00"),
    ];
    for (what, tail) in tails {
        assert_eq!(
            outcome(&hello_with_tail(tail), CAP),
            Outcome::Malformed,
            "{what}"
        );
    }
    assert!(matches!(
        outcome(&hello_with_tail(b"\x00\x00"), CAP),
        Outcome::Parsed(_)
    ));
}

#[test]
fn odd_extensions_we_do_not_read_are_kept_raw() {
    // Non-empty extended_master_secret, 2-byte heartbeat, GREASE, unknown.
    let exts: [(u16, &[u8]); 4] = [
        (23, b"\x01"),
        (15, b"\x01\x02"),
        (0x7a7a, b"\x00"),
        (0x4469, b""),
    ];
    let summary = summarize(&hello_with(Some(&exts)));
    assert_eq!(summary.extensions(), [23, 15, 0x7a7a, 0x4469]);
    let none = summarize(&hello_with(None));
    assert!(none.extensions().is_empty() && none.sni().is_none());
    assert_eq!(none.cipher_suites(), [0x1301, 0xc02f]);
}

#[test]
fn sni_is_normalised_or_dropped() {
    assert_eq!(sni_of(b"Example.COM.").as_deref(), Some("example.com"));
    assert_eq!(sni_of(b"a_b.test").as_deref(), Some("a_b.test"));
    for bad in [
        &b"a.test.."[..],
        b"127.0.0.1",
        b"::1",
        b"",
        b"caf\xc3\xa9.test",
        b"-a.test",
    ] {
        assert_eq!(sni_of(bad), None, "{bad:?}");
    }
    // The first host_name entry counts, entries of other types are skipped.
    let body = sni_body(&[(7, b"other.test"), (0, b"one.test"), (0, b"two.test")]);
    let summary = summarize(&hello_with(Some(&[(0, &body)])));
    assert_eq!(summary.sni().map(AsRef::<str>::as_ref), Some("one.test"));
    let mut garbage = sni_body(&[(0, b"a.test")]);
    garbage[1] += 1;
    garbage.push(0);
    assert_eq!(
        outcome(&hello_with(Some(&[(0, &garbage)])), CAP),
        Outcome::Malformed
    );
}

#[test]
fn alpn_names_must_be_non_empty() {
    let alpn: &[u8] = b"\x00\x09\x02h2\x00\x02\xba\xad\x01z";
    assert_eq!(
        outcome(&hello_with(Some(&[(16, alpn)])), CAP),
        Outcome::Malformed
    );
    let alpn: &[u8] = b"\x00\x0a\x02h2\x02\xba\xad\x03a\x00b";
    let summary = summarize(&hello_with(Some(&[(16, alpn), (0xfe0d, b"")])));
    assert_eq!(
        summary.alpn().collect::<Vec<_>>(),
        [&b"h2"[..], &[0xba, 0xad], b"a\0b"]
    );
    assert!(summary.ech());
}

#[test]
fn extensions_we_read_must_hold_one_exact_list() {
    let bad: [(u16, &[u8]); 8] = [
        (16, b"\x00\x05\x02h2\x05a"),              // ALPN name overruns the list
        (16, b"\x00\x03\x02h2\x00"),               // byte after the list
        (13, b"\x00\x03\x04\x03\x08"),             // odd signature_algorithms
        (10, b"\x00\x02\x00\x1d\x00"),             // byte after supported_groups
        (43, b"\x03\x03\x04\x03"),                 // odd supported_versions
        (43, b"\x02\x03\x04\x03\x03"),             // byte after supported_versions
        (51, b"\x00\x06\x00\x1d\x00\x03\xaa\xbb"), // share overruns list
        (0, b"\x00\x05\x00\x00\x03ab"),            // host name overruns list
    ];
    for (kind, data) in bad {
        let got = outcome(&hello_with(Some(&[(kind, data)])), CAP);
        assert_eq!(got, Outcome::Malformed, "{kind}: {data:02x?}");
    }
    // Zero-length bodies read as empty lists (s2n's JA4 tests send these).
    let empty: Vec<(u16, &[u8])> = [0, 10, 13, 16, 43, 51].map(|k| (k, &b""[..])).to_vec();
    let summary = summarize(&hello_with(Some(&empty)));
    assert!(summary.supported_versions().is_empty() && summary.key_share_groups().is_empty());
    let good: [(u16, &[u8]); 2] = [
        (43, b"\x04\x7a\x7a\x03\x04"),
        (51, b"\x00\x0a\x11\xec\x00\x01\x00\x00\x1d\x00\x01\x01"),
    ];
    let summary = summarize(&hello_with(Some(&good)));
    assert_eq!(summary.supported_versions(), [0x7a7a, 0x0304]);
    assert_eq!(summary.key_share_groups(), [0x11ec, 0x001d]);
}

#[test]
fn summary_serialises_for_explain() {
    let alpn: &[u8] = b"\x00\x06\x02h2\x02\xba\xad";
    let sni = sni_body(&[(0, b"A.Test")]);
    let summary = summarize(&hello_with(Some(&[(0, &sni), (16, alpn)])));
    let json = serde_json::to_value(&summary).expect("serialises");
    assert_eq!(json["sni"], "a.test");
    assert_eq!(json["alpn"], serde_json::json!(["h2", "0xbaad"]));
    assert_eq!(json["cipher_suites"], serde_json::json!([0x1301, 0xc02f]));
    assert_eq!(json["extensions"], serde_json::json!([0, 16]));
    assert_eq!(json["record_count"], 1);
    let none = serde_json::to_value(summarize(&hello_with(None))).expect("serialises");
    assert!(none["sni"].is_null());
}
