// Subdomain-to-service mapping: the JavaScript twin of `regex-services`.
//
// Same `[policy.config]`, same decisions (the shared cases file
// `examples-guests/regex-services/cases.toml` checks it):
//
//   default = "127.0.0.1:9451"     # optional: no rule matched, or no SNI
//   rules = [
//     { pattern = '^(?<service>[a-z0-9-]+)\.apps\.example$',
//       upstream = "{service}.svc.cluster.local:443" },
//   ]
//
// Rules are tried in order; `{name}` in a template is replaced by the named
// capture. Patterns are compiled once, in `init`. No match and no default:
// `unrecognized_name`; not TLS: closed.

import { reportRule, reportRoutes } from "limen:router/host@0.2.2";

const PLACEHOLDER = /\{([^{}]*)\}/g;

let rules = [];
let fallback = null;

function compile(rule, index) {
  const where = `rules[${index}]`;
  const keys = rule && typeof rule === "object" ? Object.keys(rule).sort() : [];
  if (keys.join(",") !== "pattern,upstream") {
    throw `${where}: needs exactly \`pattern\` and \`upstream\``;
  }
  if (typeof rule.pattern !== "string" || typeof rule.upstream !== "string") {
    throw `${where}: \`pattern\` and \`upstream\` must be strings`;
  }
  let regex;
  try {
    regex = new RegExp(rule.pattern);
  } catch (e) {
    throw `${where}: bad pattern: ${e.message}`;
  }
  // Which named groups exist: a match of the empty pattern is not enough, so
  // ask the source (a group name can only be declared as `(?<name>`).
  const names = new Set(
    [...rule.pattern.matchAll(/(?<!\\)\(\?<([A-Za-z_][A-Za-z0-9_]*)>/g)].map((m) => m[1]),
  );
  for (const [, name] of rule.upstream.matchAll(PLACEHOLDER)) {
    if (!names.has(name)) {
      throw `${where}: upstream uses \`{${name}}\` but the pattern has no such named group`;
    }
  }
  if (rule.upstream.replace(PLACEHOLDER, "").includes("{")) {
    throw `${where}: unclosed \`{\` in upstream \`${rule.upstream}\``;
  }
  return { regex, template: rule.upstream };
}

function expand(rule, sni) {
  const found = rule.regex.exec(sni);
  if (found === null) {
    return null;
  }
  return rule.template.replace(PLACEHOLDER, (_, name) => found.groups?.[name] ?? "");
}

function passthrough(address) {
  return {
    tag: "passthrough",
    val: {
      address,
      proxyProtocol: undefined,
      connectTimeoutMs: undefined,
      proxyTlvs: { authority: false, alpn: false, ja4: false },
    },
  };
}

export function init(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    throw `config: ${e.message}`;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw "config: expected a table";
  }
  for (const key of Object.keys(parsed)) {
    if (key !== "default" && key !== "rules") {
      throw `config: unknown field \`${key}\`, only \`default\` and \`rules\` are known`;
    }
  }
  if (!Array.isArray(parsed.rules)) {
    throw "config: missing field `rules`";
  }
  const fallbackValue = parsed.default ?? null;
  if (fallbackValue !== null && typeof fallbackValue !== "string") {
    throw "config: `default` must be a string";
  }
  rules = parsed.rules.map(compile);
  fallback = fallbackValue;
  // Shown as limen_tls_sni_routes_active and on the status page.
  reportRoutes(rules.length);
}

export function route(conn, hello) {
  if (hello === undefined || hello === null) {
    reportRule("no-match");
    return { tag: "reject", val: "close" };
  }
  const sni = hello.sni(); // one host call: read a field once
  if (sni !== undefined && sni !== null) {
    for (const rule of rules) {
      const address = expand(rule, sni);
      if (address !== null) {
        reportRule("regex");
        return passthrough(address);
      }
    }
  }
  if (fallback !== null) {
    reportRule("fallback");
    return passthrough(fallback);
  }
  reportRule("no-match");
  return { tag: "reject", val: "unrecognized-name" };
}
