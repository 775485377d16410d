//! Framing, parsing and fingerprints of a ClientHello: the bytes any client
//! on the internet controls. Beyond "no panic", it checks the property the
//! connection's reader relies on when it calls `frame` after every read: a
//! hello found in N bytes is reported as "need more" for every shorter
//! prefix, and the bytes after it change nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limen_hello::{Examined, HelloSummary, Progress, examine, frame};

/// limen's default `hello_max_bytes`.
const CAP: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(Progress::Complete(framed)) = frame(data, CAP) else {
        // Not whole, not TLS or refused: `examine` must agree.
        match examine(data, CAP) {
            Ok(Examined::Hello(_)) => panic!("examine found a hello frame did not"),
            Ok(Examined::NotTls | Examined::NeedMore) | Err(_) => {}
        }
        return;
    };
    let wire = framed.wire_len();
    // Only the first CAP bytes are ever looked at.
    assert!(
        wire <= data.len().min(CAP),
        "framed past the input or the cap"
    );
    let parsed = HelloSummary::parse(&framed);
    for k in [0, 1, 5, wire / 2, wire - 1] {
        if k >= wire || k == 0 {
            continue;
        }
        match frame(&data[..k], CAP) {
            Ok(Progress::NeedMore) => {}
            other => panic!("prefix of {k} of a {wire}-byte hello framed as {other:?}"),
        }
    }
    let Ok(hello) = parsed else { return };
    let Ok(Examined::Hello(alone)) = examine(&data[..wire], CAP) else {
        panic!("the hello alone does not examine as a hello");
    };
    assert_eq!(alone, hello, "bytes after the hello changed its summary");
    let _ = hello.fingerprints();
    serde_json::to_string(&hello).expect("a summary always serialises");
});
