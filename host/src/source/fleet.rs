//! `limen fleet status`: which instance runs what, against what is live.

use serde::Serialize;

use super::layout::{Instance, Keys};
use super::store::{self, StoreError};
use crate::config::SourceConfig;

/// The fleet as etcd sees it.
#[derive(Debug, Serialize)]
pub struct Fleet {
    /// The module `live` names (none: nothing published).
    pub live: Option<String>,
    /// What each instance reported (sorted by id).
    pub instances: Vec<Instance>,
}

impl Fleet {
    /// Every instance runs the live module (and there is one).
    pub fn converged(&self) -> bool {
        let live = self.live.as_deref();
        !self.instances.is_empty() && self.instances.iter().all(|i| Some(&*i.module) == live)
    }

    /// One line per instance, for a terminal.
    pub fn table(&self) -> String {
        let short = |h: &str| h.get(..12).unwrap_or(h).to_owned();
        let mut out = format!(
            "live module: {}\n{:<28} {:<14} {:<14} {:>10} {:>9}  REFUSED\n",
            self.live.as_deref().map_or("(none)".into(), short),
            "INSTANCE",
            "POLICY",
            "MODULE",
            "GENERATION",
            "UPTIME",
        );
        for i in &self.instances {
            let refused = i
                .refusal
                .as_ref()
                .map(|r| format!("{} {} {}", short(&r.module), r.code, r.message))
                .unwrap_or_default();
            let behind = Some(&*i.module) != self.live.as_deref();
            out.push_str(&format!(
                "{:<28} {:<14} {:<14} {:>10} {:>8}s  {}{}\n",
                i.id,
                // The content id: instances that loaded it at other times agree.
                i.version.split('@').next().unwrap_or_default(),
                short(&i.module),
                i.generation,
                i.uptime_s,
                refused,
                if behind { " (not the live module)" } else { "" }
            ));
        }
        out
    }
}

/// Read the live record and every instance's.
pub async fn status(source: &SourceConfig) -> Result<Fleet, StoreError> {
    let keys = Keys::new(&source.prefix);
    let mut client = store::connect(source).await?;
    let (live, _) = store::live(&mut client, &keys).await?;
    let mut instances = store::instances(&mut client, &keys).await?;
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Fleet {
        live: live.map(|l| l.module),
        instances,
    })
}
