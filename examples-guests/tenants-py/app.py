"""Per-tenant pools and limits: the Python twin of `tenants`.

Same `[policy.config]`, same decisions (`examples-guests/tenants/cases.toml`
checks both):

    domain = "saas.test"
    pool = "shared"                 # tenants without a pool of their own
    limits = { per_second = 5, burst = 10, max_connections = 20 }
    [tenants]
    acme = { pool = "acme", per_second = 50, burst = 100, max_connections = 500 }

`<tenant>.<domain>` goes to the tenant's pool within its rate and its cap on
open connections, both kept by limen (`host.take`, `host.acquire`). A name
outside the domain, or no SNI: `unrecognized_name`; over a limit:
`access_denied`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

_LIMITS = ("per_second", "burst", "max_connections")


def _limits(table, where, default):
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table")
    limits = dict(default)
    for name, value in table.items():
        if name not in _LIMITS:
            raise ValueError(f"{where}: unknown field `{name}`")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
            raise ValueError(f"{where}.{name}: must be a whole number")
        limits[name] = value
    return limits


def _pool(name):
    return types.Decision_Passthrough(types.Upstream(name, None, None, types.ProxyTlvs(0)))


def _reject(alert):
    return types.Decision_Reject(alert)


class WitWorld(wit_world.WitWorld):
    suffix = ""
    pool = ""
    limits = {}
    tenants = {}

    def init(self, config: str) -> None:
        try:
            parsed = json.loads(config)
            known = {"domain", "pool", "limits", "tenants"}
            if not isinstance(parsed, dict) or not set(parsed) <= known:
                raise ValueError("config: only `domain`, `pool`, `limits` and `tenants` are known")
            for field in ("domain", "pool"):
                if not isinstance(parsed.get(field), str):
                    raise ValueError(f"config: `{field}` must be a string")
            defaults = _limits(parsed.get("limits", {}), "limits", {})
            tenants = {}
            for name, tenant in parsed.get("tenants", {}).items():
                if not isinstance(tenant, dict):
                    raise ValueError(f"tenants.{name}: must be a table")
                rest = {k: v for k, v in tenant.items() if k != "pool"}
                pool = tenant.get("pool")
                if pool is not None and not isinstance(pool, str):
                    raise ValueError(f"tenants.{name}.pool: must be a string")
                tenants[name.lower()] = (pool, _limits(rest, f"tenants.{name}", defaults))
            WitWorld.suffix = "." + parsed["domain"].strip(".").lower()
            WitWorld.pool = parsed["pool"]
            WitWorld.limits = defaults
            WitWorld.tenants = tenants
            # Shown as limen_tls_sni_routes_active and on the status page.
            host.report_routes(len(tenants))
        except (ValueError, TypeError, AttributeError) as e:
            raise Err(str(e))

    def route(self, conn, hello):
        sni = hello.sni() if hello is not None else None
        tenant = sni[: -len(WitWorld.suffix)] if sni and sni.endswith(WitWorld.suffix) else ""
        if not tenant or "." in tenant:
            host.report_rule(host.RuleKind.NO_MATCH)
            return _reject(types.Alert.UNRECOGNIZED_NAME)
        known = WitWorld.tenants.get(tenant)
        if known is not None:
            host.report_rule(host.RuleKind.EXACT)
            pool, limits = known[0] or WitWorld.pool, known[1]
        else:
            host.report_rule(host.RuleKind.WILDCARD)
            pool, limits = WitWorld.pool, WitWorld.limits
        key = "tenant:" + tenant
        if "per_second" in limits and "burst" in limits:
            if not host.take(key, limits["per_second"], limits["burst"]):
                return _reject(types.Alert.ACCESS_DENIED)
        if "max_connections" in limits:
            if not host.acquire(key, limits["max_connections"]):
                return _reject(types.Alert.ACCESS_DENIED)
        return _pool(pool)
