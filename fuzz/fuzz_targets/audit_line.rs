//! Fuzz the audit-line reader (`logs --follow`, the console, rotation evidence): one JSONL line
//! into an event or a "corrupt line" report. Invariants: never a panic; an event read back
//! serialises to a line that reads back to the same event.
#![no_main]

use botgate::audit::tail::{TailItem, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(TailItem::Event(ev)) = parse_line(data, 1) {
        let line = ev.to_json_line();
        match parse_line(line.as_bytes(), 1) {
            Some(TailItem::Event(again)) => assert_eq!(again.to_json_line(), line),
            _ => panic!("an event written by to_json_line did not read back"),
        }
    }
});
