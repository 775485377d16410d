//! The admin protocol's decoders: the request line limen reads from any
//! peer that reaches its admin endpoint (before the token is checked), and
//! the answer line `limen swap`/`status` reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limen::control::admin::protocol::{Answer, Envelope};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        // What limen accepts, its own client must be able to write.
        let line = serde_json::to_vec(&envelope).expect("an envelope serialises");
        Envelope::decode(&line).expect("a re-encoded envelope decodes");
    }
    let _ = serde_json::from_slice::<Answer>(data);
});
