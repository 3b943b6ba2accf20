//! Fuzz the policy file loader (TOML with spans, per-piece deserialisation, validation): what
//! `serve` reloads from disk on every edit. Invariant: findings, never a panic.
#![no_main]

use std::path::Path;

use botgate::config::load;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load::parse(Path::new("policy.toml"), text) {
        Ok(loaded) => assert_eq!(loaded.text, text),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
