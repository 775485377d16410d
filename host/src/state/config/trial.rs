//! A candidate on trial, as configured: `[policy.shadow]` (a module shadowed
//! from the start, as `limen swap --shadow` would) and `[policy.canary]`
//! (when a candidate on canary is rolled back).
//!
//! The defaults: judged from its 100th call, rolled back once its failure
//! rate exceeds the live policy's by 5 points. A candidate as healthy as
//! the live policy is not rolled back by chance: with both failing 1 % of
//! calls, 100 calls show 6 % or more with probability 0.0005. One that
//! fails a tenth of its calls more than live is rolled back within its
//! first few hundred calls (at a 10 % share, a few thousand connections),
//! and each of its failures was decided again by the live policy, so no
//! client saw one.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// When a canary is rolled back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CanaryConfig {
    /// Candidate calls before its failure rate is judged.
    pub min_calls: u64,
    /// How far its failure rate may exceed the live policy's (0-1).
    pub margin: f64,
}

impl Default for CanaryConfig {
    fn default() -> CanaryConfig {
        CanaryConfig {
            min_calls: 100,
            margin: 0.05,
        }
    }
}

/// `[policy.canary]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCanary {
    min_calls: Option<u64>,
    margin: Option<f64>,
}

pub(super) fn canary(file: Option<&FileCanary>) -> Result<CanaryConfig, ConfigError> {
    let default = CanaryConfig::default();
    let Some(file) = file else {
        return Ok(default);
    };
    let canary = CanaryConfig {
        min_calls: file.min_calls.unwrap_or(default.min_calls),
        margin: file.margin.unwrap_or(default.margin),
    };
    if canary.min_calls == 0 || !(0.0..=1.0).contains(&canary.margin) {
        return Err(ConfigError::Invalid(
            "policy.canary: min_calls at least 1, margin between 0 and 1 (a share of calls)".into(),
        ));
    }
    Ok(canary)
}

/// `[policy.shadow]`: a candidate shadowed from the start (and again at a
/// reload that changes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowConfig {
    /// Its module.
    pub module: PathBuf,
    /// Its `init` config as JSON (absent: the live policy's).
    pub config_json: Option<String>,
}

/// `[policy.shadow]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileShadow {
    module: PathBuf,
    #[serde(default)]
    config: Option<toml::Table>,
}

pub(super) fn shadow(file: Option<&FileShadow>) -> Result<Option<ShadowConfig>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let config_json = match &file.config {
        None => None,
        Some(table) => Some(
            serde_json::to_string(table)
                .map_err(|e| ConfigError::Invalid(format!("policy.shadow.config: {e}")))?,
        ),
    };
    Ok(Some(ShadowConfig {
        module: file.module.clone(),
        config_json,
    }))
}
