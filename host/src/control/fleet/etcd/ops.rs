//! The calls limen makes, each one etcd API call: reads, writes, a delete,
//! the one conditional write, and a lease's life.

use super::wire::{self, Lease, Streamed};
use super::{Client, EtcdError};

/// A read: the values found and the store's revision at the read.
pub(crate) struct Read {
    pub(crate) values: Vec<Vec<u8>>,
    pub(crate) revision: i64,
}

impl Client {
    /// The value of `key`, if any.
    pub(crate) async fn get(&mut self, key: &[u8]) -> Result<Read, EtcdError> {
        self.range(key, Vec::new(), false).await
    }

    /// The values of every key under `prefix`, in key order.
    pub(crate) async fn get_prefix(&mut self, prefix: &[u8]) -> Result<Read, EtcdError> {
        self.range(prefix, wire::prefix_end(prefix), false).await
    }

    /// Whether `key` is stored, without fetching its value.
    pub(crate) async fn exists(&mut self, key: &[u8]) -> Result<bool, EtcdError> {
        let request = wire::RangeRequest {
            key: key.to_vec(),
            range_end: Vec::new(),
            count_only: true,
        };
        let answer: wire::RangeResponse = self.call("/v3/kv/range", &request).await?;
        Ok(answer.count > 0)
    }

    /// Store `value` at `key`; with a lease (not 0), the key goes with it.
    pub(crate) async fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
    ) -> Result<(), EtcdError> {
        let request = wire::PutRequest {
            key: key.to_vec(),
            value,
            lease,
        };
        let _: serde_json::Value = self.call("/v3/kv/put", &request).await?;
        Ok(())
    }

    /// Remove `key` (nothing if it is absent).
    pub(crate) async fn delete(&mut self, key: &[u8]) -> Result<(), EtcdError> {
        let request = wire::DeleteRequest { key: key.to_vec() };
        let _: serde_json::Value = self.call("/v3/kv/deleterange", &request).await?;
        Ok(())
    }

    /// Store `value` at `key` only if `guard` is stored, in one
    /// transaction: the revision it made, or `None` if `guard` is absent.
    pub(crate) async fn put_if_exists(
        &mut self,
        guard: &[u8],
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<Option<i64>, EtcdError> {
        let request = wire::TxnRequest {
            compare: [wire::Compare {
                result: "GREATER",
                target: "VERSION",
                key: guard.to_vec(),
                version: 0,
            }],
            success: [wire::RequestOp {
                request_put: wire::PutRequest {
                    key: key.to_vec(),
                    value,
                    lease: 0,
                },
            }],
        };
        let answer: wire::TxnResponse = self.call("/v3/kv/txn", &request).await?;
        Ok(answer.succeeded.then_some(answer.header.revision))
    }

    /// A new lease of `ttl` seconds: its id.
    pub(crate) async fn lease_grant(&mut self, ttl: i64) -> Result<i64, EtcdError> {
        let answer: Lease = self
            .call("/v3/lease/grant", &wire::LeaseGrantRequest { ttl })
            .await?;
        Ok(answer.id)
    }

    /// Renew lease `id`: the seconds it has left, 0 if it is gone.
    pub(crate) async fn keep_alive(&mut self, id: i64) -> Result<i64, EtcdError> {
        // A stream in the API; one message each way per renewal here.
        let answer: Streamed<Lease> = self
            .call("/v3/lease/keepalive", &wire::LeaseId { id })
            .await?;
        match (answer.result, answer.error) {
            (_, Some(error)) => Err(EtcdError::Status {
                code: error.code,
                message: error.message,
            }),
            (result, None) => Ok(result.map_or(0, |lease| lease.ttl)),
        }
    }

    /// End lease `id` now, and the keys that go with it.
    pub(crate) async fn lease_revoke(&mut self, id: i64) -> Result<(), EtcdError> {
        let _: serde_json::Value = self.call("/v3/lease/revoke", &wire::LeaseId { id }).await?;
        Ok(())
    }

    async fn range(
        &mut self,
        key: &[u8],
        range_end: Vec<u8>,
        count_only: bool,
    ) -> Result<Read, EtcdError> {
        let request = wire::RangeRequest {
            key: key.to_vec(),
            range_end,
            count_only,
        };
        let answer: wire::RangeResponse = self.call("/v3/kv/range", &request).await?;
        Ok(Read {
            values: answer.kvs.into_iter().map(|kv| kv.value).collect(),
            revision: answer.header.revision,
        })
    }
}
