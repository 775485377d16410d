//! The shadow's consumer: a candidate decides, off the connection path,
//! the inputs of connections the live policy decided (`state::trial`), and
//! its decision, planned against the same rules, is compared with the live
//! one. Runs on a thread of its own (`control` starts it), so a candidate
//! that spins to its deadline or traps costs live connections no worker
//! time, only a share of a core.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::decision::Decision;
use crate::observe::log_limit::LogLimit;
use crate::outcome::ShadowOutcome;
use crate::plan;
use crate::policy::Policy;
use crate::policy::limit_table::LimitTable;
use crate::state::trial::{Difference, Sample, Tally};

/// How a decision is compared: its action and where it leads (or why it
/// failed). Two decisions are the same when these are equal.
pub(crate) fn shown(decision: &Decision) -> String {
    decision.to_string()
}

/// A failed call or a refused decision, as the comparison shows it.
pub(crate) fn failed(why: &dyn std::fmt::Display) -> String {
    format!("failed: {why}")
}

/// Decide every sample of one worker's queue with `policy`, its limits
/// apart in `limits`, until the queue closes (the trial ended).
pub(crate) async fn run(
    (policy, limits): (Arc<Policy>, Arc<LimitTable>),
    tally: Arc<Tally>,
    mut samples: mpsc::Receiver<Sample>,
) {
    while let Some(sample) = samples.recv().await {
        // Ended (aborted, promoted, rolled back, replaced): what is still
        // queued is dropped with the queue, not decided.
        if tally.ended.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let generation = &sample.generation;
        let hello = sample.hello.as_ref();
        let candidate = match policy.decide_apart(&limits, &sample.conn, hello).await {
            Ok(verdict) => {
                let decided = shown(&verdict.decision);
                // Its limits are its own: slots it took are given back now.
                drop(verdict.held);
                match plan::plan(&generation.rules(), verdict.decision, hello) {
                    Ok(_) => Ok(decided),
                    Err(refusal) => Err(failed(&refusal)),
                }
            }
            Err(error) => Err(failed(&error)),
        };
        let (outcome, candidate) = match candidate {
            Ok(decided) if decided == sample.live => (ShadowOutcome::Same, decided),
            Ok(decided) => (ShadowOutcome::Different, decided),
            Err(why) => (ShadowOutcome::Failed, why),
        };
        tally.count(outcome);
        if outcome != ShadowOutcome::Same {
            differed(&tally, &sample, candidate);
        }
    }
}

/// Keep a difference for the status page and log it, a few a second.
fn differed(tally: &Tally, sample: &Sample, candidate: String) {
    let hello = sample.hello.as_deref();
    let sni = hello.and_then(|h| h.sni()).map_or("-", |s| s.as_ref());
    let alpn: Vec<String> = hello
        .map(|h| {
            h.alpn()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let alpn = if alpn.is_empty() {
        "-".to_owned()
    } else {
        alpn.join(",")
    };
    static DIFFERED: LogLimit = LogLimit::new(5);
    if let Some(suppressed) = DIFFERED.allow() {
        tracing::info!(
            target: "tls_sni", client = %sample.conn.client, sni, alpn = %alpn,
            live = %sample.live, candidate = %candidate, suppressed, "policy.shadow_differed"
        );
    }
    tally.differed(Difference {
        at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        client: sample.conn.client.to_string(),
        sni: sni.to_owned(),
        alpn,
        live: sample.live.clone(),
        candidate,
    });
}
