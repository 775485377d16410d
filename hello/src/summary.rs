//! `HelloSummary`: the validated, owned view of a ClientHello that the
//! policy, logs and `limen explain` see.

use std::sync::OnceLock;

use rustls_pki_types::DnsName;
use serde::{Serialize, Serializer};

use super::fingerprint::Fingerprints;
use super::lists::{Alpn, AlpnList, Codes, List};
use super::parse::{self, RawExtension, ext};
use super::{Framed, HelloError, Transport, sni};

/// What a ClientHello offers, parsed once and fully validated.
///
/// There is no way to build a half-valid one: fields are private, there is no
/// `Default`, and [`HelloSummary::parse`] is the only constructor.
/// Codepoints (versions, suites, groups, extensions) are kept as raw `u16`s in
/// wire order, GREASE and unknown values included, so a new codepoint never
/// makes a client unroutable and fingerprints can be derived later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloSummary {
    /// A `rustls_pki_types::DnsName`, so anything holding one knows it is a
    /// valid, lower-case DNS name without a trailing dot.
    sni: Option<DnsName<'static>>,
    /// The first host_name as sent, kept only when it is not a valid DNS
    /// name (so `sni` is `None`): an IP literal, bad characters.
    server_name: Option<Box<str>>,
    alpn: AlpnList,
    legacy_version: u16,
    record_version: u16,
    /// Suites, extension types, versions, groups, key share groups,
    /// signature algorithms, point formats: one allocation for them all.
    codes: Codes,
    ech: bool,
    ech_outer: bool,
    esni: bool,
    hello_length: u32,
    record_count: u32,
    transport: Transport,
    /// Computed on first use: most policies and connections never read
    /// them (MD5 and two SHA-256 plus formatting, per connection).
    fingerprints: OnceLock<Fingerprints>,
}

impl HelloSummary {
    /// Parse the ClientHello that [`frame`](super::frame) found, or that
    /// [`InitialReader`](super::InitialReader) reassembled from QUIC.
    ///
    /// Refuses ([`HelloError::Malformed`]) what no TLS stack would accept
    /// structurally: fields or extensions overrunning their lengths, trailing
    /// bytes, repeated extension types, malformed contents of the extensions
    /// read here, empty ALPN names. Anything merely unusual (unknown or GREASE
    /// codepoints, odd contents of extensions we don't read, no extensions at
    /// all) is accepted.
    pub fn parse(framed: &Framed<'_>) -> Result<Self, HelloError> {
        let message = framed.message();
        let parts = parse::client_hello(message)?;
        let suites = parts.cipher_suites.as_chunks::<2>().0;
        let extensions = parts.extensions;
        let mut codes =
            Codes::with_capacity(suites.len() + extensions.len() + extensions.most_codes());
        codes.extend(
            List::CipherSuites,
            suites.iter().map(|p| u16::from_be_bytes(*p)),
        );
        codes.extend(List::Extensions, extensions.iter().map(|e| e.kind));
        let mut summary = Self {
            sni: None,
            server_name: None,
            alpn: AlpnList::default(),
            legacy_version: parts.legacy_version,
            record_version: framed.record_version(),
            codes,
            ech: false,
            ech_outer: false,
            esni: false,
            // The 24-bit length plus the 4-byte header always fits.
            hello_length: u32::try_from(message.len()).unwrap_or(u32::MAX),
            record_count: framed.records(),
            transport: framed.transport(),
            fingerprints: OnceLock::new(),
        };
        for extension in extensions.iter() {
            summary.read_extension(extension)?;
        }
        Ok(summary)
    }

    /// Fold one extension into the summary. Adding a field (say, EC point
    /// formats for JA3) is one more arm here.
    fn read_extension(&mut self, e: RawExtension<'_>) -> Result<(), HelloError> {
        match e.kind {
            ext::SERVER_NAME => match sni::server_name(e.data)? {
                sni::ServerName::Dns(name) => self.sni = Some(name),
                sni::ServerName::Other(sent) => self.server_name = Some(sent),
                sni::ServerName::Absent => {}
            },
            ext::ALPN => self.alpn = AlpnList::parse(e.data)?,
            ext::SUPPORTED_VERSIONS => self.codes.fill(List::SupportedVersions, |out| {
                parse::supported_versions(e.data, out)
            })?,
            ext::SUPPORTED_GROUPS => self.codes.fill(List::SupportedGroups, |out| {
                parse::codes16(e.data, out, "bad supported_groups extension")
            })?,
            ext::KEY_SHARE => self.codes.fill(List::KeyShareGroups, |out| {
                parse::key_share_groups(e.data, out)
            })?,
            ext::SIGNATURE_ALGORITHMS => self.codes.fill(List::SignatureAlgorithms, |out| {
                parse::codes16(e.data, out, "bad signature_algorithms extension")
            })?,
            ext::EC_POINT_FORMATS => {
                let formats = parse::ec_point_formats(e.data);
                self.codes
                    .extend(List::EcPointFormats, formats.iter().map(|f| u16::from(*f)));
            }
            // The inner hello is encrypted: what limen sees of an `outer`
            // (type 0) hello is the public name, not the real destination.
            ext::ENCRYPTED_CLIENT_HELLO => {
                self.ech = true;
                self.ech_outer = e.data.first() == Some(&0);
            }
            ext::ENCRYPTED_SERVER_NAME => self.esni = true,
            _ => {}
        }
        Ok(())
    }

    /// The first host_name of server_name, lower-cased without its trailing
    /// dot; `None` when absent or not a valid DNS name (e.g. an IP literal).
    pub fn sni(&self) -> Option<&DnsName<'static>> {
        self.sni.as_ref()
    }

    /// ALPN protocol names in client preference order, each non-empty.
    pub fn alpn(&self) -> Alpn<'_> {
        self.alpn.names()
    }

    /// The ClientHello's legacy_version field (0x0303 for TLS 1.2 and 1.3).
    pub fn legacy_version(&self) -> u16 {
        self.legacy_version
    }

    /// The version field of the first record header; 0 for QUIC, which
    /// carries the hello in CRYPTO frames without TLS records (RFC 9001 §4).
    pub fn record_version(&self) -> u16 {
        self.record_version
    }

    /// supported_versions entries in wire order (empty when absent).
    pub fn supported_versions(&self) -> &[u16] {
        self.codes.get(List::SupportedVersions)
    }

    /// Cipher suites in wire order.
    pub fn cipher_suites(&self) -> &[u16] {
        self.codes.get(List::CipherSuites)
    }

    /// Extension types in wire order.
    pub fn extensions(&self) -> &[u16] {
        self.codes.get(List::Extensions)
    }

    /// supported_groups entries in wire order.
    pub fn supported_groups(&self) -> &[u16] {
        self.codes.get(List::SupportedGroups)
    }

    /// Groups of the key shares offered, in wire order.
    pub fn key_share_groups(&self) -> &[u16] {
        self.codes.get(List::KeyShareGroups)
    }

    /// signature_algorithms entries in wire order.
    pub fn signature_algorithms(&self) -> &[u16] {
        self.codes.get(List::SignatureAlgorithms)
    }

    /// Whether the encrypted_client_hello extension (0xfe0d) is present.
    pub fn ech(&self) -> bool {
        self.ech
    }

    /// Whether the ECH extension says this is an outer ClientHello (type
    /// 0): its SNI is then the ECH public name, not the real destination.
    pub fn ech_outer(&self) -> bool {
        self.ech_outer
    }

    /// Whether the obsolete ESNI extension (0xffce) is present.
    pub fn esni(&self) -> bool {
        self.esni
    }

    /// ec_point_formats entries in wire order.
    pub fn ec_point_formats(&self) -> &[u16] {
        self.codes.get(List::EcPointFormats)
    }

    /// The first host_name exactly as sent, when it is not a valid DNS
    /// name (then [`sni`](Self::sni) is `None`): an IP literal such as
    /// `82.81.46.13`, bad characters (non-UTF-8 bytes replaced).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// JA3 and JA4, computed on the first call.
    pub fn fingerprints(&self) -> &Fingerprints {
        self.fingerprints.get_or_init(|| Fingerprints::of(self))
    }

    /// Handshake message length, 4-byte header included.
    pub fn hello_length(&self) -> u32 {
        self.hello_length
    }

    /// How many TLS records carried the hello; 0 for QUIC (no records).
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Whether the hello came over TCP or QUIC.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

/// The fields, then the fingerprints (computed now if nobody asked yet): what
/// `limen explain` prints.
impl Serialize for HelloSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            #[serde(serialize_with = "ser_sni")]
            sni: Option<&'a DnsName<'static>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            server_name: Option<&'a str>,
            #[serde(serialize_with = "ser_alpn")]
            alpn: Alpn<'a>,
            legacy_version: u16,
            record_version: u16,
            supported_versions: &'a [u16],
            cipher_suites: &'a [u16],
            extensions: &'a [u16],
            supported_groups: &'a [u16],
            key_share_groups: &'a [u16],
            signature_algorithms: &'a [u16],
            ec_point_formats: &'a [u16],
            ech: bool,
            ech_outer: bool,
            esni: bool,
            hello_length: u32,
            record_count: u32,
            #[serde(skip_serializing_if = "Transport::is_tcp")]
            transport: Transport,
            #[serde(flatten)]
            fingerprints: &'a Fingerprints,
        }
        View {
            sni: self.sni(),
            server_name: self.server_name(),
            alpn: self.alpn(),
            legacy_version: self.legacy_version,
            record_version: self.record_version,
            supported_versions: self.supported_versions(),
            cipher_suites: self.cipher_suites(),
            extensions: self.extensions(),
            supported_groups: self.supported_groups(),
            key_share_groups: self.key_share_groups(),
            signature_algorithms: self.signature_algorithms(),
            ec_point_formats: self.ec_point_formats(),
            ech: self.ech,
            ech_outer: self.ech_outer,
            esni: self.esni,
            hello_length: self.hello_length,
            record_count: self.record_count,
            transport: self.transport,
            fingerprints: self.fingerprints(),
        }
        .serialize(serializer)
    }
}

fn ser_sni<S: Serializer>(sni: &Option<&DnsName<'static>>, s: S) -> Result<S::Ok, S::Error> {
    sni.map(AsRef::<str>::as_ref).serialize(s)
}

/// Names as text when they are UTF-8 (the common `h2`, `http/1.1`), else as
/// `0x` + lowercase hex so `explain` output stays printable JSON.
fn ser_alpn<S: Serializer>(alpn: &Alpn<'_>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(alpn.clone().map(|name| match std::str::from_utf8(name) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            use std::fmt::Write;
            name.iter().fold(String::from("0x"), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
        }
    }))
}
