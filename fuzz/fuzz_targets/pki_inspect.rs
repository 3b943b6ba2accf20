//! Fuzz PEM/DER inspection: certificates, CSRs, CRLs and keys, PEM with any number of blocks or
//! one DER object — what `botgate cert inspect`, `ca trust`, `cert issue --csr` and the CRL
//! loader read from operators' files. Invariant: an error, never a panic.
#![no_main]

use botgate::pki::{crl, inspect, issue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = inspect::inspect("fuzz.pem", data) {
        for item in &items {
            let _ = item.describe();
            let _ = item.kind();
        }
    }
    let _ = inspect::certificates("fuzz.pem", data);
    let _ = crl::parse_crl("fuzz.crl", data);
    let _ = issue::read_csr("fuzz.csr", data);
});
