//! The store interface every caller uses. SQLite (`sqlite/`) is one implementation; a network
//! store is another implementation of the same traits. Narrow traits, one per question:
//! credentials, PKI, rotations, the admin journal, and the change feed the inventory hub follows.
//!
//! Callbacks that must run inside a write transaction (the admin journal row that commits with
//! the change it records, the audit append that commits with the journal cursor) are `&dyn`
//! so the traits stay object-safe behind [`super::Store`].

use chrono::{DateTime, Utc};

use super::StoreError;
use super::changes::Change;
use super::journal::{AdminEntry, Delivery, JournalRow};
use super::pki::{
    CaRecord, CertRecord, CertSeen, CertSighting, NewCa, NewCert, RevokedCert, TrustBundle,
};
use super::rotations::RotationRow;
use super::tokens::{NewToken, TokenRecord};

/// Builds the admin journal row for a change from the row the change produced.
pub type AdminFor<'a, T> = &'a (dyn Fn(&T) -> AdminEntry + Send + Sync);
/// Appends claimed journal rows to an audit file; the claim commits only if it succeeds.
pub type AppendRows<'a> = &'a mut (dyn FnMut(&[JournalRow]) -> std::io::Result<()> + Send);

/// Service tokens (hashed secrets only).
pub trait TokenStore {
    /// Insert a token. Fails with `Conflict` when a live token already has this name.
    fn create_token(&self, t: &NewToken<'_>) -> Result<TokenRecord, StoreError>;
    /// `create_token` with its admin journal row, in the same transaction.
    fn create_token_recorded(
        &self,
        t: &NewToken<'_>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Every token, newest first.
    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// By Client ID, or by name (the live one first).
    fn find_token(&self, name_or_client_id: &str) -> Result<TokenRecord, StoreError>;
    /// Revoke by name or Client ID.
    fn revoke_token(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, StoreError>;
    /// `revoke_token` with its admin journal row, in the same transaction.
    fn revoke_token_recorded(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Batched last-seen updates: (client id, when, ip).
    fn touch_tokens(&self, seen: &[(String, DateTime<Utc>, String)]) -> Result<(), StoreError>;
}

/// CAs (local and trusted) and their CRLs.
pub trait CaStore {
    /// Insert a chain (root first); each later entry's parent is the one before it.
    fn insert_ca_chain(&self, chain: &[NewCa<'_>]) -> Result<Vec<CaRecord>, StoreError>;
    fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError>;
    fn find_ca(&self, name: &str) -> Result<CaRecord, StoreError>;
    fn ca_by_id(&self, id: i64) -> Result<CaRecord, StoreError>;
    /// The newest local root.
    fn local_root(&self) -> Result<Option<CaRecord>, StoreError>;
    /// The newest local intermediate whose key is on this host.
    fn issuing_ca(&self) -> Result<Option<CaRecord>, StoreError>;
    fn root_key_on_host(&self) -> Result<bool, StoreError>;
    /// Remove the root's private key from the store and hand it to the caller.
    fn take_root_key(&self) -> Result<Option<(CaRecord, String)>, StoreError>;
    fn set_ca_crl_path(&self, name: &str, crl_path: Option<&str>) -> Result<CaRecord, StoreError>;
    fn record_crl(
        &self,
        ca_id: i64,
        crl_number: i64,
        der: &[u8],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A trusted root (by name) with its descendants and their CRLs.
    fn trust_bundle(&self, name: &str) -> Result<TrustBundle, StoreError>;
    fn trust_bundles(&self) -> Result<Vec<TrustBundle>, StoreError>;
}

/// Certificates (issued, watched), revocations and sightings at the gate.
pub trait CertStore {
    fn insert_cert(&self, c: &NewCert<'_>) -> Result<CertRecord, StoreError>;
    /// Add certificates found in watched directories; returns how many were new.
    fn upsert_watched_certs(&self, certs: &[NewCert<'_>]) -> Result<usize, StoreError>;
    fn list_certs(&self) -> Result<Vec<CertRecord>, StoreError>;
    fn find_certs(&self, serial_or_cn: &str) -> Result<Vec<CertRecord>, StoreError>;
    fn revoke_cert(
        &self,
        id: i64,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<CertRecord, StoreError>;
    fn revoked_certs(&self) -> Result<Vec<RevokedCert>, StoreError>;
    /// Batched sightings of client certificates at the gate.
    fn touch_certs(&self, seen: &[CertSeen]) -> Result<(), StoreError>;
    fn list_cert_sightings(&self) -> Result<Vec<CertSighting>, StoreError>;
    fn find_cert_sightings(&self, serial_or_cn: &str) -> Result<Vec<CertSighting>, StoreError>;
}

/// Rotation rows (their meaning belongs to `rotation/`).
pub trait RotationStore {
    /// An id that exists already is a `Conflict`.
    fn insert_rotation(&self, row: &RotationRow) -> Result<(), StoreError>;
    /// Update only if the stored state is still `expected_state` (else `Conflict`).
    fn update_rotation(&self, row: &RotationRow, expected_state: &str) -> Result<(), StoreError>;
    fn find_rotation(&self, id: &str) -> Result<RotationRow, StoreError>;
    fn list_rotations(&self) -> Result<Vec<RotationRow>, StoreError>;
}

/// The admin journal, relayed once into each audit file (see `journal`).
pub trait AdminJournal {
    /// Record an admin action on its own (for changes that are not a single store write).
    fn record_admin(&self, entry: &AdminEntry) -> Result<i64, StoreError>;
    /// Gate side: take or renew `audit_log`'s writer lease and claim the rows past its cursor.
    fn claim_journal(
        &self,
        audit_log: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<JournalRow>, StoreError>;
    /// Gate side, on stop: give the lease up.
    fn release_writer_lease(&self, audit_log: &str, holder: &str) -> Result<(), StoreError>;
    /// CLI side: unless a gate holds a live lease, hand pending rows to `write`.
    fn deliver_journal(
        &self,
        audit_log: &str,
        now: DateTime<Utc>,
        write: AppendRows<'_>,
    ) -> Result<Result<Delivery, std::io::Error>, StoreError>;
    /// Rows past `after_id`, oldest first.
    fn journal_since(&self, after_id: i64) -> Result<Vec<JournalRow>, StoreError>;
}

/// The change feed: every write that changes enforcement appends one row, in its transaction,
/// with a version that only grows. Followers re-read what they hold past the last version seen.
pub trait ChangeFeed {
    /// The newest version (0 for a store nothing was ever written to).
    fn change_version(&self) -> Result<i64, StoreError>;
    /// Changes after `after` (oldest first, at most `limit`).
    fn changes_since(&self, after: i64, limit: usize) -> Result<Vec<Change>, StoreError>;
}

/// One store: all of the above.
pub trait Backend:
    TokenStore
    + CaStore
    + CertStore
    + RotationStore
    + AdminJournal
    + ChangeFeed
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Where the store is, for messages (never a password).
    fn describe(&self) -> String;
    /// The schema version the store is at.
    fn schema_version(&self) -> Result<i64, StoreError>;
    /// The file, for an embedded store.
    fn file(&self) -> Option<&std::path::Path>;
}
