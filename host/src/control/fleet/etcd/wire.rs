//! etcd's v3 API as its gRPC gateway speaks it: JSON in the protobuf JSON
//! mapping, so bytes are base64 and 64-bit integers are strings (accepted
//! as numbers too). Only the messages and fields limen uses; a field the
//! server leaves out is its zero value, as in protobuf.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every answer's header: the store's revision when it was made.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Header {
    #[serde(default, deserialize_with = "int")]
    pub(crate) revision: i64,
}

/// A key and its value.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyValue {
    #[serde(default, deserialize_with = "bytes")]
    pub(crate) value: Vec<u8>,
}

/// `/v3/kv/range`: one key, or every key in `[key, range_end)`.
#[derive(Debug, Serialize)]
pub(crate) struct RangeRequest {
    #[serde(serialize_with = "b64")]
    pub(crate) key: Vec<u8>,
    #[serde(serialize_with = "b64", skip_serializing_if = "Vec::is_empty")]
    pub(crate) range_end: Vec<u8>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) count_only: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RangeResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) kvs: Vec<KeyValue>,
    #[serde(default, deserialize_with = "int")]
    pub(crate) count: i64,
}

/// `/v3/kv/put`, and a transaction's put.
#[derive(Debug, Serialize)]
pub(crate) struct PutRequest {
    #[serde(serialize_with = "b64")]
    pub(crate) key: Vec<u8>,
    #[serde(serialize_with = "b64")]
    pub(crate) value: Vec<u8>,
    #[serde(serialize_with = "int_out", skip_serializing_if = "is_zero")]
    pub(crate) lease: i64,
}

/// `/v3/kv/deleterange` of one key.
#[derive(Debug, Serialize)]
pub(crate) struct DeleteRequest {
    #[serde(serialize_with = "b64")]
    pub(crate) key: Vec<u8>,
}

/// `/v3/kv/txn` with the one shape limen needs: if `key` exists (its
/// version is above 0), put.
#[derive(Debug, Serialize)]
pub(crate) struct TxnRequest {
    pub(crate) compare: [Compare; 1],
    pub(crate) success: [RequestOp; 1],
}

#[derive(Debug, Serialize)]
pub(crate) struct Compare {
    /// "GREATER": the key's version is above `version`.
    pub(crate) result: &'static str,
    /// "VERSION".
    pub(crate) target: &'static str,
    #[serde(serialize_with = "b64")]
    pub(crate) key: Vec<u8>,
    #[serde(serialize_with = "int_out")]
    pub(crate) version: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct RequestOp {
    pub(crate) request_put: PutRequest,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TxnResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) succeeded: bool,
}

/// `/v3/lease/grant`.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseGrantRequest {
    #[serde(rename = "TTL", serialize_with = "int_out")]
    pub(crate) ttl: i64,
}

/// The answer to a grant and to a keep-alive.
#[derive(Debug, Deserialize)]
pub(crate) struct Lease {
    #[serde(rename = "ID", default, deserialize_with = "int")]
    pub(crate) id: i64,
    /// 0 on a keep-alive: the lease is gone.
    #[serde(rename = "TTL", default, deserialize_with = "int")]
    pub(crate) ttl: i64,
}

/// `/v3/lease/keepalive` and `/v3/lease/revoke`.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseId {
    #[serde(rename = "ID", serialize_with = "int_out")]
    pub(crate) id: i64,
}

/// `/v3/watch`: one key, from a revision on.
#[derive(Debug, Serialize)]
pub(crate) struct WatchRequest {
    pub(crate) create_request: WatchCreate,
}

#[derive(Debug, Serialize)]
pub(crate) struct WatchCreate {
    #[serde(serialize_with = "b64")]
    pub(crate) key: Vec<u8>,
    #[serde(serialize_with = "int_out")]
    pub(crate) start_revision: i64,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WatchResponse {
    #[serde(default)]
    pub(crate) canceled: bool,
    #[serde(default, deserialize_with = "int")]
    pub(crate) compact_revision: i64,
    #[serde(default)]
    pub(crate) cancel_reason: String,
    #[serde(default)]
    pub(crate) events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    /// Absent for PUT (the enum's zero), "DELETE" otherwise.
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    pub(crate) kv: Option<KeyValue>,
}

impl Event {
    pub(crate) fn is_put(&self) -> bool {
        self.kind.as_deref().is_none_or(|kind| kind == "PUT")
    }
}

/// A message of a streamed answer (watch, keep-alive): the result, or the
/// error that ended the stream.
#[derive(Debug, Deserialize)]
pub(crate) struct Streamed<T> {
    pub(crate) result: Option<T>,
    pub(crate) error: Option<Status>,
}

/// `/v3/auth/authenticate`.
#[derive(Debug, Serialize)]
pub(crate) struct AuthRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) password: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuthResponse {
    #[serde(default)]
    pub(crate) token: String,
}

/// A failed call: the gRPC status code and etcd's message.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Status {
    #[serde(default)]
    pub(crate) code: i64,
    #[serde(default)]
    pub(crate) message: String,
}

/// gRPC's UNAUTHENTICATED: the token expired or was never valid.
pub(crate) const UNAUTHENTICATED: i64 = 16;

/// The end of the range of every key starting with `prefix` (etcd's
/// `WithPrefix`): the prefix with its last byte below 0xff incremented.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

fn b64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

fn int_out<S: Serializer>(value: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_string())
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD.decode(text).map_err(serde::de::Error::custom)
}

/// A 64-bit integer as the JSON mapping writes it (a string), or a number.
fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_as_etcd_3_4_writes_them() {
        // Verbatim from etcd 3.4.23's gateway.
        let range: RangeResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"15118495548433857066","revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#,
        )
        .unwrap();
        assert_eq!(range.header.revision, 2);
        assert_eq!(range.count, 1);
        assert_eq!(range.kvs[0].value, b"bar");
        let empty: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"7"}}"#).unwrap();
        assert_eq!((empty.count, empty.kvs.len()), (0, 0));
        let gone: Streamed<Lease> =
            serde_json::from_str(r#"{"result":{"header":{"revision":"3"},"ID":"123"}}"#).unwrap();
        assert_eq!(gone.result.unwrap().ttl, 0);
        let event: Streamed<WatchResponse> = serde_json::from_str(
            r#"{"result":{"events":[{"kv":{"key":"Zm9v","value":"YmF6"}},{"type":"DELETE","kv":{"key":"Zm9v"}}]}}"#,
        )
        .unwrap();
        let events = event.result.unwrap().events;
        assert!(events[0].is_put() && !events[1].is_put());
    }

    #[test]
    fn requests_write_bytes_as_base64_and_integers_as_strings() {
        let put = PutRequest {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            lease: 42,
        };
        assert_eq!(
            serde_json::to_string(&put).unwrap(),
            r#"{"key":"Zm9v","value":"YmFy","lease":"42"}"#
        );
    }

    #[test]
    fn a_prefix_ends_after_its_last_key() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
