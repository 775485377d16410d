//! Subdomain-to-service mapping, as Kubernetes-style ingresses do it.
//!
//! ```toml
//! [policy.config]
//! default = "127.0.0.1:9451"     # optional: no rule matched, or no SNI
//! rules = [
//!   { pattern = '^(?<service>[a-z0-9-]+)-(?<namespace>[a-z0-9-]+)\.apps\.example$',
//!     upstream = "{service}-public.{namespace}.svc.cluster.local:443" },
//! ]
//! ```
//! Rules are tried in order; `{name}` in a template is replaced by the named
//! capture. Regexes and templates are compiled once, in `init`. No match and
//! no default: `unrecognized_name`; not TLS: closed.

use limen_guest::{
    Alert, ClientHello, Connection, Decision, Policy, RuleKind, config_from_json, report_rule,
};
use regex_lite::Regex;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    default: Option<String>,
    rules: Vec<RuleConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    pattern: String,
    upstream: String,
}

/// A compiled rule: the regex and its template, checked against each other.
struct Rule {
    regex: Regex,
    template: Vec<Piece>,
}

enum Piece {
    Text(String),
    /// Index of a capture group in `regex`.
    Capture(usize),
}

/// The compiled rule list.
pub struct RegexServices {
    rules: Vec<Rule>,
    default: Option<String>,
}

impl Policy for RegexServices {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = config_from_json(config)?;
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| compile(rule).map_err(|e| format!("rules[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        limen_guest::report_routes(rules.len());
        Ok(RegexServices {
            rules,
            default: config.default,
        })
    }

    fn route(&self, _conn: &Connection, hello: Option<&ClientHello>) -> Decision {
        let Some(hello) = hello else {
            report_rule(RuleKind::NoMatch);
            return Decision::Reject(Alert::Close);
        };
        let matched = hello
            .sni()
            .and_then(|sni| self.rules.iter().find_map(|rule| rule.expand(&sni)));
        let (kind, upstream) = match matched {
            Some(address) => (RuleKind::Regex, Some(address)),
            None => (RuleKind::Fallback, self.default.clone()),
        };
        match upstream {
            Some(address) => {
                report_rule(kind);
                Decision::passthrough(address)
            }
            None => {
                report_rule(RuleKind::NoMatch);
                Decision::Reject(Alert::UnrecognizedName)
            }
        }
    }
}

impl Rule {
    fn expand(&self, sni: &str) -> Option<String> {
        let caps = self.regex.captures(sni)?;
        let mut out = String::with_capacity(64);
        for piece in &self.template {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Capture(index) => out.push_str(caps.get(*index).map_or("", |m| m.as_str())),
            }
        }
        Some(out)
    }
}

fn compile(rule: &RuleConfig) -> Result<Rule, String> {
    let regex = Regex::new(&rule.pattern).map_err(|e| format!("bad pattern: {e}"))?;
    let mut template = Vec::new();
    let mut rest = rule.upstream.as_str();
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("unclosed `{{` in upstream `{}`", rule.upstream))?;
        if open > 0 {
            template.push(Piece::Text(rest[..open].to_owned()));
        }
        let name = &rest[open + 1..close];
        let index = regex
            .capture_names()
            .position(|n| n == Some(name))
            .ok_or_else(|| {
                format!("upstream uses `{{{name}}}` but the pattern has no such named group")
            })?;
        template.push(Piece::Capture(index));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        template.push(Piece::Text(rest.to_owned()));
    }
    Ok(Rule { regex, template })
}

limen_guest::export_policy!(RegexServices);
