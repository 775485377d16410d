//! The choice of member, without sockets: weights, skipping, stickiness.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rustls_pki_types::ServerName;

use super::Balance;
use super::balance::{Pick, pick, schedule};
use super::{Entry, Member, Members};
use crate::observe::metrics::Metrics;

fn members(weights: &[u32]) -> Members {
    let metrics = Metrics::new();
    let entries: Vec<Entry> = weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| {
            let addr: SocketAddr = format!("127.0.0.{}:9000", i + 1).parse().unwrap();
            let host = ServerName::IpAddress(addr.ip().into());
            Entry {
                member: Arc::new(Member::new(addr, host, metrics.member_series("t", addr))),
                weight,
                from: i,
            }
        })
        .collect();
    Members {
        schedule: schedule(weights),
        entries,
    }
}

fn count(balance: Balance, set: &Members, rounds: usize, key: impl Fn(usize) -> u64) -> Vec<usize> {
    let counter = AtomicUsize::new(0);
    let mut seen = vec![0; set.entries.len()];
    for round in 0..rounds {
        let at = Pick {
            key: key(round),
            tried: &[],
            now: 1,
        };
        seen[pick(balance, set, &counter, at).unwrap()] += 1;
    }
    seen
}

#[test]
fn round_robin_follows_the_weights_exactly_and_interleaves() {
    let set = members(&[1, 1, 2]);
    assert_eq!(
        count(Balance::RoundRobin, &set, 400, |_| 0),
        [100, 100, 200]
    );
    // Smooth: the weight-2 member never gets two slots in a row.
    let slots = schedule(&[1, 1, 2]);
    assert!(slots.windows(2).all(|w| w[0] != w[1]), "{slots:?}");
}

#[test]
fn a_member_down_or_tried_is_skipped() {
    let set = members(&[1, 1, 1]);
    set.entries[1].member.checked(false, 1, 1);
    let counter = AtomicUsize::new(0);
    for balance in [
        Balance::RoundRobin,
        Balance::LeastConnections,
        Balance::RandomTwo,
        Balance::HashClient,
    ] {
        for key in 0..50 {
            let at = Pick {
                key,
                tried: &[0],
                now: 1,
            };
            assert_eq!(pick(balance, &set, &counter, at), Some(2), "{balance:?}");
        }
    }
    let at = Pick {
        key: 0,
        tried: &[0, 2],
        now: 1,
    };
    assert_eq!(pick(Balance::RoundRobin, &set, &counter, at), None);
}

/// Two members, one failing every connection: it still gets only its
/// share of first tries, since a retry does not move the schedule.
#[test]
fn a_retry_does_not_take_the_next_connections_slot() {
    let set = members(&[1, 1]);
    let counter = AtomicUsize::new(0);
    let mut first_tries = [0; 2];
    for _ in 0..10 {
        let at = |tried| Pick {
            key: 0,
            tried,
            now: 1,
        };
        let first = pick(Balance::RoundRobin, &set, &counter, at(&[])).unwrap();
        first_tries[first] += 1;
        if first == 0 {
            assert_eq!(pick(Balance::RoundRobin, &set, &counter, at(&[0])), Some(1));
        }
    }
    assert_eq!(first_tries, [5, 5]);
}

#[test]
fn hashing_is_sticky_and_a_leaving_member_moves_only_its_keys() {
    let set = members(&[1, 1, 1, 1]);
    let counter = AtomicUsize::new(0);
    let choose = |key| {
        pick(
            Balance::HashClient,
            &set,
            &counter,
            Pick {
                key,
                tried: &[],
                now: 1,
            },
        )
    };
    let before: Vec<_> = (0..1000).map(choose).collect();
    assert_eq!(before, (0..1000).map(choose).collect::<Vec<_>>());
    let spread = count(Balance::HashClient, &set, 4000, |r| r as u64);
    assert!(
        spread.iter().all(|&n| (800..1200).contains(&n)),
        "{spread:?}"
    );
    set.entries[3].member.checked(false, 1, 1);
    for (key, was) in before.iter().enumerate() {
        let now = choose(key as u64);
        if *was != Some(3) {
            assert_eq!(now, *was, "key {key} moved though its member stayed");
        }
    }
}

#[test]
fn ejection_takes_a_member_out_until_it_ends() {
    let set = members(&[1]);
    let member = &set.entries[0].member;
    let eject_for = std::time::Duration::from_secs(60);
    assert!(!member.connect_failed(2, eject_for));
    assert!(member.connect_failed(2, eject_for));
    let now = super::clock();
    assert!(!member.usable(now) && member.usable(now + 61_000));
    // Rise brings it back at once.
    member.checked(false, 1, 1);
    assert_eq!(member.checked(true, 1, 1), Some(true));
    assert!(member.usable(super::clock()));
}

#[test]
fn an_empty_pool_picks_nothing_and_does_not_panic() {
    let set = members(&[]);
    let counter = AtomicUsize::new(0);
    for balance in [
        Balance::RoundRobin,
        Balance::LeastConnections,
        Balance::RandomTwo,
        Balance::HashSni,
    ] {
        let at = Pick {
            key: 1,
            tried: &[],
            now: 1,
        };
        assert_eq!(pick(balance, &set, &counter, at), None, "{balance:?}");
    }
}
