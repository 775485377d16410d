"""Subdomain-to-service mapping: the Python twin of `regex-services`.

Same `[policy.config]`, same decisions (the shared cases file
`examples-guests/regex-services/cases.toml` checks it):

    default = "127.0.0.1:9451"     # optional: no rule matched, or no SNI
    rules = [
      { pattern = '^(?<service>[a-z0-9-]+)\\.apps\\.example$',
        upstream = "{service}.svc.cluster.local:443" },
    ]

Rules are tried in order; `{name}` in a template is replaced by the named
capture. Patterns are compiled once, in `init`. No match and no default:
`unrecognized_name`; not TLS: closed.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

# Named groups are written `(?<name>...)` in the config, as Rust, JavaScript
# and PCRE spell them; Python's `re` spells them `(?P<name>...)`.
_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?=[A-Za-z_])")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class _Rule:
    def __init__(self, index, rule):
        where = f"rules[{index}]"
        if not isinstance(rule, dict) or set(rule) != {"pattern", "upstream"}:
            raise ValueError(f"{where}: needs exactly `pattern` and `upstream`")
        if not isinstance(rule["pattern"], str) or not isinstance(rule["upstream"], str):
            raise ValueError(f"{where}: `pattern` and `upstream` must be strings")
        try:
            self.regex = re.compile(_NAMED_GROUP.sub("(?P<", rule["pattern"]))
        except re.error as e:
            raise ValueError(f"{where}: bad pattern: {e}") from None
        self.template = rule["upstream"]
        for name in _PLACEHOLDER.findall(self.template):
            if name not in self.regex.groupindex:
                raise ValueError(
                    f"{where}: upstream uses `{{{name}}}` but the pattern has no such named group"
                )
        if "{" in _PLACEHOLDER.sub("", self.template):
            raise ValueError(f"{where}: unclosed `{{` in upstream `{self.template}`")

    def expand(self, sni):
        found = self.regex.search(sni)
        if found is None:
            return None
        return _PLACEHOLDER.sub(lambda m: found.group(m.group(1)) or "", self.template)


def _passthrough(address):
    return types.Decision_Passthrough(
        types.Upstream(address, None, None, types.ProxyTlvs(0))
    )


class WitWorld(wit_world.WitWorld):
    rules = []
    default = None

    def init(self, config: str) -> None:
        try:
            parsed = json.loads(config)
            if not isinstance(parsed, dict) or not set(parsed) <= {"default", "rules"}:
                raise ValueError("config: only `default` and `rules` are known")
            if "rules" not in parsed:
                raise ValueError("config: missing field `rules`")
            if not isinstance(parsed["rules"], list):
                raise ValueError("config: `rules` must be a list")
            default = parsed.get("default")
            if default is not None and not isinstance(default, str):
                raise ValueError("config: `default` must be a string")
            WitWorld.rules = [_Rule(i, r) for i, r in enumerate(parsed["rules"])]
            WitWorld.default = default
            # Shown as limen_tls_sni_routes_active and on the status page.
            host.report_routes(len(WitWorld.rules))
        except (ValueError, TypeError) as e:
            raise Err(str(e))

    def route(self, conn, hello):
        if hello is None:
            host.report_rule(host.RuleKind.NO_MATCH)
            return types.Decision_Reject(types.Alert.CLOSE)
        address = None
        sni = hello.sni()  # one host call: read a field once
        if sni is not None:
            for rule in WitWorld.rules:
                address = rule.expand(sni)
                if address is not None:
                    host.report_rule(host.RuleKind.REGEX)
                    return _passthrough(address)
        if WitWorld.default is not None:
            host.report_rule(host.RuleKind.FALLBACK)
            return _passthrough(WitWorld.default)
        host.report_rule(host.RuleKind.NO_MATCH)
        return types.Decision_Reject(types.Alert.UNRECOGNIZED_NAME)
