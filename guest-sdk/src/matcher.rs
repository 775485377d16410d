//! Host-name patterns as routing tables write them.
//!
//! limen hands policies an SNI that is already lower-cased, stripped of a
//! trailing dot and validated, so matching here is plain string work.

use std::fmt;

/// One host pattern: `a.test` (exact), `*.wild.test` (exactly one label, as in
/// certificates), `.wild.test` (any name below it, at any depth, as nginx's
/// `.example.com` and HAProxy's `map_end`), or `~^node[0-9]+\.rx\.test$` (a
/// regex, with the `regex` feature).
#[derive(Debug, Clone)]
pub enum HostPattern {
    /// Matches one name.
    Exact(String),
    /// `*.suffix`: matches `label.suffix` where `label` has no dot. The field
    /// holds `.suffix` (with the leading dot).
    Wildcard(String),
    /// `.suffix`: matches any name ending in `.suffix` (not `suffix` itself).
    /// The field holds `.suffix`.
    Suffix(String),
    /// Matches names the regex finds a match in (anchor it yourself).
    #[cfg(feature = "regex")]
    Regex(regex_lite::Regex),
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

impl HostPattern {
    /// Parse a pattern; names are normalised the way limen normalises SNI.
    pub fn parse(pattern: &str) -> Result<HostPattern, PatternError> {
        if let Some(re) = pattern.strip_prefix('~') {
            return Self::regex(re);
        }
        let name = normalise(pattern);
        if name.is_empty() {
            return Err(PatternError("empty host pattern".into()));
        }
        if let Some(suffix) = name.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
                return Err(PatternError(format!(
                    "wildcard `{pattern}` must be `*.` followed by a name"
                )));
            }
            return Ok(HostPattern::Wildcard(suffix.to_owned()));
        }
        if name.starts_with('.') {
            if name.len() < 2 || name.contains('*') || name.starts_with("..") {
                return Err(PatternError(format!(
                    "suffix `{pattern}` must be `.` followed by a name"
                )));
            }
            return Ok(HostPattern::Suffix(name));
        }
        if name.contains('*') {
            return Err(PatternError(format!(
                "`{pattern}`: `*` is only allowed as the whole first label"
            )));
        }
        Ok(HostPattern::Exact(name))
    }

    #[cfg(feature = "regex")]
    fn regex(re: &str) -> Result<HostPattern, PatternError> {
        regex_lite::Regex::new(re)
            .map(HostPattern::Regex)
            .map_err(|e| PatternError(format!("bad regex `{re}`: {e}")))
    }

    #[cfg(not(feature = "regex"))]
    fn regex(re: &str) -> Result<HostPattern, PatternError> {
        Err(PatternError(format!(
            "regex pattern `~{re}` needs limen-guest's `regex` feature"
        )))
    }

    /// The kind of rule this pattern makes, for [`crate::report_rule`].
    pub fn kind(&self) -> crate::RuleKind {
        match self {
            HostPattern::Exact(_) => crate::RuleKind::Exact,
            HostPattern::Wildcard(_) | HostPattern::Suffix(_) => crate::RuleKind::Wildcard,
            #[cfg(feature = "regex")]
            HostPattern::Regex(_) => crate::RuleKind::Regex,
        }
    }

    /// Does `name` (a normalised SNI) match?
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => exact == name,
            HostPattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            HostPattern::Suffix(suffix) => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
            #[cfg(feature = "regex")]
            HostPattern::Regex(re) => re.is_match(name),
        }
    }
}

fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::HostPattern;

    #[test]
    fn exact_is_case_and_dot_insensitive_in_the_pattern() {
        let p = HostPattern::parse("A.Test.").unwrap();
        assert!(p.matches("a.test"));
        assert!(!p.matches("b.a.test"));
    }

    #[test]
    fn wildcard_matches_one_label_only() {
        let p = HostPattern::parse("*.wild.test").unwrap();
        assert!(p.matches("a.wild.test"));
        assert!(!p.matches("a.b.wild.test"));
        assert!(!p.matches("wild.test"));
        assert!(!p.matches(".wild.test"));
        assert!(!p.matches("xwild.test"));
    }

    #[test]
    fn suffix_matches_any_depth_below() {
        let p = HostPattern::parse(".wild.test").unwrap();
        assert!(p.matches("a.wild.test"));
        assert!(p.matches("a.b.wild.test"));
        assert!(!p.matches("wild.test"));
        assert!(!p.matches("xwild.test"));
        assert!(HostPattern::parse(".").is_err());
        assert!(HostPattern::parse("..x").is_err());
    }

    #[test]
    fn regex_and_bad_patterns() {
        let p = HostPattern::parse(r"~^node[0-9]+\.rx\.test$").unwrap();
        assert!(p.matches("node42.rx.test"));
        assert!(!p.matches("nodex.rx.test"));
        assert!(HostPattern::parse("~(").is_err());
        assert!(HostPattern::parse("a.*.test").is_err());
        assert!(HostPattern::parse("*").is_err());
        assert!(HostPattern::parse("").is_err());
    }
}
