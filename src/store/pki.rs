//! PKI rows: CAs (local root + intermediate, and external CAs trusted by name), certificates
//! (issued here or found in watched directories), revocations, the latest CRL per local CA, and
//! sightings of client certificates at the gate. Private keys of local CAs live in `cas.key_pem`
//! (the store file is 0600); the root's is NULL once it was moved out with `--root-key-out`.
//!
//! Writes that change enforcement (a CA, a cert, a revocation, a CRL) bump the generation in the
//! same transaction, so a running gate rebuilds its trust stores within one poll.

mod cas;
mod certs;

pub use cas::{CaKind, CaRecord, NewCa, TrustBundle};
pub use certs::{
    CertRecord, CertSeen, CertSighting, CertSource, NewCert, RevokedCert, normalize_fingerprint,
};
