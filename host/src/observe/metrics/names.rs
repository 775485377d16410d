//! Metric names: every family limen exports, one constant each.

/// Connections accepted, by listener.
pub const CONNECTIONS: &str = "limen_connections_total";
/// Connections accepted, by worker (how the kernel spread them).
pub const WORKER_CONNECTIONS: &str = "limen_worker_connections_total";
/// Connections open now, by listener and action.
pub const ACTIVE: &str = "limen_connections_active";
/// Policy decisions, by listener and result (see `RouteResult`).
pub const ROUTES: &str = "limen_tls_sni_route_total";
/// No rule matched and no fallback: dropped, by listener.
pub const MISSES: &str = "limen_tls_sni_listener_miss_total";
/// ClientHellos that could not be gathered, by listener and reason.
pub const PARSE_FAILURES: &str = "limen_tls_sni_listener_parse_failures_total";
/// Time to gather a ClientHello, by listener.
pub const PEEK_DURATION: &str = "limen_tls_client_hello_peek_duration_seconds";
/// Time spent in the policy's `route`.
pub const POLICY_CALL: &str = "limen_policy_call_duration_seconds";
/// Fuel one `route` call used.
pub const POLICY_FUEL: &str = "limen_policy_fuel_used";
/// Policy failures, by kind.
pub const POLICY_FAILURES: &str = "limen_policy_failures_total";
/// Instances replaced before their memory reached the limit.
pub const POLICY_RECYCLED: &str = "limen_policy_instances_recycled_total";
/// Connections routed, by upstream (bounded: see `[metrics] upstream_labels`).
pub const UPSTREAM_ROUTED: &str = "limen_upstream_routed_total";
/// Upstream connection failures, by reason.
pub const UPSTREAM_FAILURES: &str = "limen_upstream_connect_failures_total";
/// Time to connect to an upstream (successful connects).
pub const UPSTREAM_CONNECT: &str = "limen_upstream_connect_duration_seconds";
/// Terminated handshakes that failed, by listener and reason.
pub const HANDSHAKE_FAILURES: &str = "limen_tls_handshake_failures_total";
/// Bytes proxied, by direction (`up`: client to upstream).
pub const BYTES: &str = "limen_bytes_total";
/// Policy swap attempts, by trigger (`file`, `admin`, `reload`) and
/// outcome (`applied`, `refused`, `unchanged`).
pub const POLICY_SWAPS: &str = "limen_policy_swaps_total";
/// 1 for the live policy's version.
pub const POLICY_INFO: &str = "limen_policy_info";
/// Configuration reloads (SIGHUP), by outcome (`applied`, `refused`).
pub const CONFIG_RELOADS: &str = "limen_config_reloads_total";
/// Access log lines dropped because the writer fell behind.
pub const ACCESS_LOG_DROPPED: &str = "limen_access_log_dropped_total";
/// Times the heap was handed back to the kernel after a fall in open
/// connections (glibc's `malloc_trim`).
pub const MEMORY_TRIMS: &str = "limen_memory_trims_total";
/// 1 while a pool member's active check passes (0 once it fails `fall`
/// times in a row), by pool and member address.
pub const UPSTREAM_MEMBER_HEALTHY: &str = "limen_upstream_member_healthy";
/// Connections open to a pool member, by pool and member address.
pub const UPSTREAM_MEMBER_CONNECTIONS: &str = "limen_upstream_member_connections";
/// Connections tried again on another pool member, by pool and reason.
pub const UPSTREAM_RETRIES: &str = "limen_upstream_retries_total";
/// Policy limit checks that said no, by kind (`rate`: a `take` found
/// the bucket empty; `slots`: an `acquire` found every slot taken).
pub const POLICY_LIMITED: &str = "limen_policy_limited_total";
/// Limit keys pushed out of the host's table by newer ones.
pub const POLICY_LIMIT_EVICTIONS: &str = "limen_policy_limit_evictions_total";
/// A certificate's leaf `notAfter` (Unix seconds), by certificate name:
/// file-based and ACME alike.
pub const CERTIFICATE_EXPIRY: &str = "limen_certificate_expiry_timestamp_seconds";
/// ACME orders, by certificate and outcome (`issued`, `renewed`, `failed`).
pub const ACME_ORDERS: &str = "limen_acme_orders_total";
/// 1 while limen is connected to its `[source.etcd]`.
pub const SOURCE_CONNECTED: &str = "limen_source_connected";
/// TLS-ALPN-01 validation connections limen answered, by certificate.
pub const ACME_CHALLENGES: &str = "limen_acme_challenges_total";
/// QUIC flows made, by listener.
pub const QUIC_FLOWS: &str = "limen_quic_flows_total";
/// QUIC flows open, by listener.
pub const QUIC_FLOWS_ACTIVE: &str = "limen_quic_flows_active";
/// Datagrams a QUIC listener dropped, by listener and reason.
pub const QUIC_DROPPED: &str = "limen_quic_dropped_total";
/// `limen upgrade` hand-overs, by outcome (`handed_over`, `refused`).
pub const UPGRADES: &str = "limen_process_upgrades_total";
/// A shadowed candidate's decisions against the live policy's, by outcome
/// (`same`, `different`, `failed`, `dropped`).
pub const POLICY_SHADOW: &str = "limen_policy_shadow_total";
/// A candidate on canary, by outcome: `decided` (connections it decided),
/// `failed` (its calls that failed: the live policy decided them),
/// `rolled_back`.
pub const POLICY_CANARY: &str = "limen_policy_canary_total";
/// How many routing rules a policy holds, as its `init` reported
/// (`report-routes`), by policy (`live`, `candidate`).
pub const ROUTES_ACTIVE: &str = "limen_tls_sni_routes_active";
/// Datagrams relayed through QUIC flows, by listener and direction.
pub const QUIC_DATAGRAMS: &str = "limen_quic_datagrams_total";
