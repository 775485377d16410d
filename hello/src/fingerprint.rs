//! JA3 and JA4 (TLS client) fingerprints of a parsed ClientHello.
//!
//! JA3: Salesforce's method, `version,ciphers,extensions,groups,point_formats`
//! in decimal, GREASE removed, and its MD5. JA4: FoxIO's `JA4.md` (the TLS
//! client method, BSD-3-Clause; no other JA4+ method is implemented here),
//! `<t|q><version><d|i><ciphers><extensions><alpn>_<cipher hash>_<extension hash>`
//! and its raw form `JA4_r`. Computed once per connection from the summary's
//! fields, so no byte is read twice.
//!
//! Where the references disagree, the spec wins: a non-alphanumeric first or
//! last ALPN byte gives the first and last hex digits of the first ALPN
//! value (FoxIO's stored output for 0xbaad differs; see the corpus test).

use md5::Md5;

use super::{HelloSummary, Transport};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The fingerprints of one ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fingerprints {
    /// JA3 string (`771,4865-4866,...,0-23-...,29-23-24,0`).
    pub ja3: String,
    /// MD5 of [`Fingerprints::ja3`], lowercase hex.
    pub ja3_hash: String,
    /// JA4 (`t13d1516h2_8daaf6152771_e5627efa2ab1`).
    pub ja4: String,
    /// JA4_r: JA4 with the sorted lists in clear instead of hashed.
    pub ja4_r: String,
}

/// What the fingerprints are computed from (the summary's raw fields).
struct Inputs<'a> {
    transport: Transport,
    legacy_version: u16,
    supported_versions: &'a [u16],
    cipher_suites: &'a [u16],
    extensions: &'a [u16],
    supported_groups: &'a [u16],
    ec_point_formats: &'a [u16],
    signature_algorithms: &'a [u16],
    first_alpn: Option<&'a [u8]>,
}

impl Fingerprints {
    /// Compute them from a summary's fields (parsing already did, once:
    /// [`HelloSummary::fingerprints`] is the way to read them).
    pub fn of(hello: &HelloSummary) -> Fingerprints {
        compute(&Inputs {
            transport: hello.transport(),
            legacy_version: hello.legacy_version(),
            supported_versions: hello.supported_versions(),
            cipher_suites: hello.cipher_suites(),
            extensions: hello.extensions(),
            supported_groups: hello.supported_groups(),
            ec_point_formats: hello.ec_point_formats(),
            signature_algorithms: hello.signature_algorithms(),
            first_alpn: hello.alpn().next(),
        })
    }
}

const SERVER_NAME: u16 = 0x0000;
const ALPN: u16 = 0x0010;

/// RFC 8701 GREASE: `0x?a?a` with both bytes equal.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn compute(i: &Inputs<'_>) -> Fingerprints {
    let ja3 = ja3(i);
    let ja3_hash = hex_bytes(&Md5::digest(ja3.as_bytes()));
    let (ja4, ja4_r) = ja4(i);
    Fingerprints {
        ja3,
        ja3_hash,
        ja4,
        ja4_r,
    }
}

// Numbers are written by hand below, not with `write!`: a hello has ~100
// of them, and the formatting machinery alone cost ~3 µs per connection.

fn ja3(i: &Inputs<'_>) -> String {
    let mut out = String::with_capacity(256);
    decimal(&mut out, i.legacy_version);
    out.push(',');
    decimal_list(&mut out, i.cipher_suites);
    out.push(',');
    decimal_list(&mut out, i.extensions);
    out.push(',');
    decimal_list(&mut out, i.supported_groups);
    out.push(',');
    for (n, format) in i.ec_point_formats.iter().enumerate() {
        if n > 0 {
            out.push('-');
        }
        decimal(&mut out, *format);
    }
    out
}

fn decimal_list(out: &mut String, values: &[u16]) {
    let mut first = true;
    for v in values.iter().filter(|v| !is_grease(**v)) {
        if !first {
            out.push('-');
        }
        decimal(out, *v);
        first = false;
    }
}

fn decimal(out: &mut String, mut v: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    digits[start..]
        .iter()
        .for_each(|d| out.push(char::from(*d)));
}

/// (JA4, JA4_r).
fn ja4(i: &Inputs<'_>) -> (String, String) {
    let mut ciphers: Vec<u16> = i
        .cipher_suites
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let extensions: Vec<u16> = i
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let destination = if extensions.contains(&SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    let mut prefix = String::with_capacity(10);
    // JA4's protocol: `t` for TLS over TCP, `q` for QUIC (`d`, DTLS, is
    // never routed here).
    prefix.push(match i.transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
    });
    prefix.push_str(version(i));
    prefix.push(destination);
    for count in [ciphers.len(), extensions.len()] {
        let count = count.min(99) as u8;
        prefix.push(char::from(b'0' + count / 10));
        prefix.push(char::from(b'0' + count % 10));
    }
    alpn_chars(&mut prefix, i.first_alpn);
    ciphers.sort_unstable();
    let mut hashed: Vec<u16> = extensions
        .into_iter()
        .filter(|e| *e != SERVER_NAME && *e != ALPN)
        .collect();
    hashed.sort_unstable();
    let cipher_list = hex_list(&ciphers);
    let mut extension_list = hex_list(&hashed);
    let signatures: Vec<u16> = i
        .signature_algorithms
        .iter()
        .copied()
        .filter(|s| !is_grease(*s))
        .collect();
    if !signatures.is_empty() {
        extension_list.push('_');
        extension_list.push_str(&hex_list(&signatures));
    }
    let ja4 = [
        prefix.as_str(),
        &hash12(&cipher_list, ciphers.is_empty()),
        &hash12(&extension_list, hashed.is_empty()),
    ]
    .join("_");
    let ja4_r = [prefix.as_str(), &cipher_list, &extension_list].join("_");
    (ja4, ja4_r)
}

/// The highest supported_versions entry (GREASE aside), else legacy_version.
fn version(i: &Inputs<'_>) -> &'static str {
    let highest = i
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(i.legacy_version);
    match highest {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// First and last character of the first ALPN value; the first and last
/// hex digits of that value when either is not alphanumeric; `00` without ALPN.
fn alpn_chars(out: &mut String, first: Option<&[u8]>) {
    match first {
        Some([a, .., z] | [a @ z]) if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() => {
            out.push(char::from(*a));
            out.push(char::from(*z));
        }
        Some([a, .., z] | [a @ z]) => {
            out.push(char::from(HEX[usize::from(a >> 4)]));
            out.push(char::from(HEX[usize::from(z & 0xf)]));
        }
        _ => out.push_str("00"),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex (`hex::encode` walks an iterator per digit: slower here).
fn hex_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        for shift in [12, 8, 4, 0] {
            out.push(char::from(HEX[usize::from((v >> shift) & 0xf)]));
        }
    }
    out
}

/// The first 12 hex digits of SHA-256; twelve zeros for an empty list.
fn hash12(list: &str, empty: bool) -> String {
    if empty {
        return "000000000000".into();
    }
    hex_bytes(&Sha256::digest(list.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_is_the_sixteen_rfc_8701_values() {
        let grease: Vec<u16> = (0..=u16::MAX).filter(|v| is_grease(*v)).collect();
        assert_eq!(grease.len(), 16);
        assert_eq!((grease[0], grease[15]), (0x0a0a, 0xfafa));
    }

    #[test]
    fn alpn_characters_follow_the_spec() {
        let chars = |first: Option<&[u8]>| {
            let mut out = String::new();
            alpn_chars(&mut out, first);
            out
        };
        assert_eq!(chars(Some(b"h2")), "h2");
        assert_eq!(chars(Some(b"http/1.1")), "h1");
        assert_eq!(chars(Some(b"h")), "hh");
        assert_eq!(chars(Some(&[0xba, 0xad])), "bd");
        assert_eq!(chars(None), "00");
    }
}
