//! `limen fleet status`: which instance runs what, against what is live.

use serde::Serialize;

use super::layout::{Instance, Keys};
use super::store::{self, StoreError};
use crate::policy::{ModuleHash, PolicyVersion};
use crate::state::config::SourceConfig;

/// The fleet as etcd sees it.
#[derive(Debug, Serialize)]
pub struct Fleet {
    /// The module `live` names (none: nothing published).
    pub live: Option<String>,
    /// The published policy's content id (module and config), as instances
    /// report it in their version.
    pub live_id: Option<String>,
    /// Instance records that could not be read.
    pub unreadable: usize,
    /// What each instance reported (sorted by id).
    pub instances: Vec<Instance>,
}

impl Fleet {
    /// Every instance runs the published policy: its module with its
    /// config (and there is one instance at least).
    pub fn converged(&self) -> bool {
        !self.instances.is_empty() && self.instances.iter().all(|i| self.runs_live(i))
    }

    fn runs_live(&self, instance: &Instance) -> bool {
        let id = instance.version.split('@').next().unwrap_or_default();
        self.live_id.as_deref() == Some(id)
    }

    /// One line per instance, for a terminal.
    pub fn table(&self) -> String {
        let short = |h: &str| h.get(..12).unwrap_or(h).to_owned();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = format!(
            "live module: {}\n{:<28} {:<14} {:<14} {:>10} {:>9}  REFUSED\n",
            self.live.as_deref().map_or("(none)".into(), short),
            "INSTANCE",
            "POLICY",
            "MODULE",
            "GENERATION",
            "UPTIME",
        );
        if self.unreadable > 0 {
            out.push_str(&format!(
                "({} instance record(s) could not be read)\n",
                self.unreadable
            ));
        }
        for i in &self.instances {
            let refused = i
                .refusal
                .as_ref()
                .map(|r| format!("{} {} {}", short(&r.module), r.code, r.message))
                .unwrap_or_default();
            let behind = !self.runs_live(i);
            out.push_str(&format!(
                "{:<28} {:<14} {:<14} {:>10} {:>8}s  {}{}\n",
                i.id,
                // The content id: instances that loaded it at other times agree.
                i.version.split('@').next().unwrap_or_default(),
                short(&i.module),
                i.generation,
                now.saturating_sub(i.started_at),
                refused,
                if behind {
                    " (not the published policy)"
                } else {
                    ""
                }
            ));
            if let Some(t) = &i.trying {
                let [same, different, failed, dropped, decided, canary_failed] = t.counts;
                out.push_str(&format!(
                    "  candidate {} ({}): shadow same {same} different {different} failed {failed} \
                     dropped {dropped}; canary decided {decided} failed {canary_failed}{}\n",
                    short(&t.module),
                    t.mode,
                    t.ended
                        .as_ref()
                        .map_or(String::new(), |e| format!("; ENDED: {e}")),
                ));
            }
        }
        out
    }
}

/// Read the live record and every instance's.
pub async fn read(source: &SourceConfig) -> Result<Fleet, StoreError> {
    let keys = Keys::new(&source.prefix);
    let mut client = store::connect(source).await?;
    let (live, _) = store::live(&mut client, &keys).await?;
    let (mut instances, unreadable) = store::instances(&mut client, &keys).await?;
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    // The id an instance computes for it (`PolicyVersion`): module hash and
    // the config text it was given.
    let live_id = live.as_ref().and_then(|l| {
        let hash: [u8; 32] = hex::decode(&l.module).ok()?.try_into().ok()?;
        let version = PolicyVersion::new(ModuleHash(hash), &l.config.to_string());
        Some(version.id.to_string())
    });
    Ok(Fleet {
        live: live.map(|l| l.module),
        live_id,
        instances,
        unreadable,
    })
}
