//! The store interface every caller uses. SQLite (`sqlite/`) is one implementation; a network
//! store is another implementation of the same traits. Narrow traits, one per question:
//! credentials, PKI, rotations, the admin journal, and the change feed the inventory hub follows.
//!
//! The methods are async so a network store awaits its server without blocking a runtime
//! thread: the running gate's followers (inventory hub, last-seen batches, journal relay) await
//! them; one-shot CLI verbs block on the future with [`super::wait`]. SQLite answers from its
//! local file inside the future.
//!
//! Callbacks that must run inside a write transaction (the admin journal row that commits with
//! the change it records, the audit append that commits with the journal cursor) are `&dyn`
//! so the traits stay object-safe behind [`super::Store`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use super::changes::Change;
use super::journal::{AdminEntry, Delivery, JournalRow};
use super::pki::{
    CaRecord, CertRecord, CertSeen, CertSighting, NewCa, NewCert, RevokedCert, TrustBundle,
};
use super::rotations::RotationRow;
pub use super::signing_keys::SigningKeyStore;
use super::tokens::{NewToken, TokenRecord};
use super::transfer::TableRows;
use super::usage::{UsageRecord, UsageRow};
use crate::bounds::TokenBounds;

/// Builds the admin journal row for a change from the row the change produced.
pub type AdminFor<'a, T> = &'a (dyn Fn(&T) -> AdminEntry + Send + Sync);
/// Appends claimed journal rows to an audit file; the claim commits only if it succeeds.
pub type AppendRows<'a> = &'a mut (dyn FnMut(&[JournalRow]) -> std::io::Result<()> + Send);

/// Service tokens (hashed secrets only).
#[async_trait]
pub trait TokenStore {
    /// Insert a token. Fails with `Conflict` when a live token already has this name.
    async fn create_token(&self, t: &NewToken<'_>) -> Result<TokenRecord, StoreError>;
    /// `create_token` with its admin journal row, in the same transaction.
    async fn create_token_recorded(
        &self,
        t: &NewToken<'_>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Every token, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// By Client ID, or by name (the live one first).
    async fn find_token(&self, name_or_client_id: &str) -> Result<TokenRecord, StoreError>;
    /// Revoke by name or Client ID.
    async fn revoke_token(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, StoreError>;
    /// `revoke_token` with its admin journal row, in the same transaction.
    async fn revoke_token_recorded(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Disable (`disabled = true`) or enable a live token, with its admin journal row. A revoked
    /// token, or one already in that state, is a `Conflict`.
    async fn set_token_disabled(
        &self,
        name_or_client_id: &str,
        disabled: bool,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Move a live token's expiry to `expires_at`, with its admin journal row.
    async fn set_token_expiry(
        &self,
        name_or_client_id: &str,
        expires_at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// A new secret (its hash) for a live token, same Client ID: the current secret becomes the
    /// previous one, accepted until `previous_until`; the version goes up by one; with its admin
    /// row. A `Conflict` while an earlier previous secret is still accepted at `now` (at most
    /// two secrets per token).
    async fn rotate_token_secret(
        &self,
        name_or_client_id: &str,
        new_hash: &crate::credential::SecretHash,
        now: DateTime<Utc>,
        previous_until: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// End the previous secret's grace at `at` (refused from then on), with its admin row; a
    /// `Conflict` when no previous secret is accepted at `at`.
    async fn end_secret_grace(
        &self,
        name_or_client_id: &str,
        at: DateTime<Utc>,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Undo the last `rotate_token_secret` (an aborted in-place rotation): the previous secret
    /// is the current one again and the version goes back, with its admin row. A `Conflict`
    /// when the token is not at `version` or has no previous secret.
    async fn revert_token_secret(
        &self,
        name_or_client_id: &str,
        version: i64,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Replace a live token's bounds (networks, rate limit) with its admin journal row, in one
    /// transaction that also moves the change feed (the gates enforce it within a poll).
    async fn set_token_bounds(
        &self,
        name_or_client_id: &str,
        bounds: &TokenBounds,
        admin: AdminFor<'_, TokenRecord>,
    ) -> Result<TokenRecord, StoreError>;
    /// Batched last-seen updates: (client id, when, ip).
    async fn touch_tokens(
        &self,
        seen: &[(String, DateTime<Utc>, String)],
    ) -> Result<(), StoreError>;
}

/// CAs (local and trusted) and their CRLs.
#[async_trait]
pub trait CaStore {
    /// Insert a chain (root first); each later entry's parent is the one before it.
    async fn insert_ca_chain(&self, chain: &[NewCa<'_>]) -> Result<Vec<CaRecord>, StoreError>;
    async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError>;
    async fn find_ca(&self, name: &str) -> Result<CaRecord, StoreError>;
    async fn ca_by_id(&self, id: i64) -> Result<CaRecord, StoreError>;
    /// The newest local root.
    async fn local_root(&self) -> Result<Option<CaRecord>, StoreError>;
    /// The newest local intermediate whose key is on this host.
    async fn issuing_ca(&self) -> Result<Option<CaRecord>, StoreError>;
    async fn root_key_on_host(&self) -> Result<bool, StoreError>;
    /// Remove the root's private key from the store and hand it to the caller.
    async fn take_root_key(&self) -> Result<Option<(CaRecord, String)>, StoreError>;
    async fn set_ca_crl_path(
        &self,
        name: &str,
        crl_path: Option<&str>,
    ) -> Result<CaRecord, StoreError>;
    async fn record_crl(
        &self,
        ca_id: i64,
        crl_number: i64,
        der: &[u8],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A trusted root (by name) with its descendants and their CRLs.
    async fn trust_bundle(&self, name: &str) -> Result<TrustBundle, StoreError>;
    async fn trust_bundles(&self) -> Result<Vec<TrustBundle>, StoreError>;
}

/// Certificates (issued, watched), revocations and sightings at the gate.
#[async_trait]
pub trait CertStore {
    async fn insert_cert(&self, c: &NewCert<'_>) -> Result<CertRecord, StoreError>;
    /// Add certificates found in watched directories; returns how many were new.
    async fn upsert_watched_certs(&self, certs: &[NewCert<'_>]) -> Result<usize, StoreError>;
    async fn list_certs(&self) -> Result<Vec<CertRecord>, StoreError>;
    async fn find_certs(&self, serial_or_cn: &str) -> Result<Vec<CertRecord>, StoreError>;
    async fn revoke_cert(
        &self,
        id: i64,
        at: DateTime<Utc>,
        reason: Option<&str>,
    ) -> Result<CertRecord, StoreError>;
    async fn revoked_certs(&self) -> Result<Vec<RevokedCert>, StoreError>;
    /// Batched sightings of client certificates at the gate.
    async fn touch_certs(&self, seen: &[CertSeen]) -> Result<(), StoreError>;
    async fn list_cert_sightings(&self) -> Result<Vec<CertSighting>, StoreError>;
    async fn find_cert_sightings(
        &self,
        serial_or_cn: &str,
    ) -> Result<Vec<CertSighting>, StoreError>;
}

/// Rotation rows (their meaning belongs to `rotation/`).
#[async_trait]
pub trait RotationStore {
    /// An id that exists already is a `Conflict`.
    async fn insert_rotation(&self, row: &RotationRow) -> Result<(), StoreError>;
    /// Update only if the stored state is still `expected_state` (else `Conflict`).
    async fn update_rotation(
        &self,
        row: &RotationRow,
        expected_state: &str,
    ) -> Result<(), StoreError>;
    async fn find_rotation(&self, id: &str) -> Result<RotationRow, StoreError>;
    async fn list_rotations(&self) -> Result<Vec<RotationRow>, StoreError>;
}

/// The admin journal, relayed once into each audit file (see `journal`).
#[async_trait]
pub trait AdminJournal {
    /// Record an admin action on its own (for changes that are not a single store write).
    async fn record_admin(&self, entry: &AdminEntry) -> Result<i64, StoreError>;
    /// Gate side: take or renew `audit_log`'s writer lease and claim the rows past its cursor.
    async fn claim_journal(
        &self,
        audit_log: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<JournalRow>, StoreError>;
    /// Gate side, on stop: give the lease up.
    async fn release_writer_lease(&self, audit_log: &str, holder: &str) -> Result<(), StoreError>;
    /// CLI side: unless a gate holds a live lease, hand pending rows to `write`.
    async fn deliver_journal(
        &self,
        audit_log: &str,
        now: DateTime<Utc>,
        write: AppendRows<'_>,
    ) -> Result<Result<Delivery, std::io::Error>, StoreError>;
    /// Rows past `after_id`, oldest first.
    async fn journal_since(&self, after_id: i64) -> Result<Vec<JournalRow>, StoreError>;
}

/// The change feed: every write that changes enforcement appends one row, in its transaction,
/// with a version that only grows. Followers re-read what they hold past the last version seen.
#[async_trait]
pub trait ChangeFeed {
    /// The newest version (0 for a store nothing was ever written to).
    async fn change_version(&self) -> Result<i64, StoreError>;
    /// Changes after `after` (oldest first, at most `limit`).
    async fn changes_since(&self, after: i64, limit: usize) -> Result<Vec<Change>, StoreError>;
    /// A signal that moves when another process may have appended changes (a network store's
    /// notifications), so followers read at once instead of on their next poll. `None`: poll.
    fn change_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Leases for one-node jobs (re-signing CRLs, the fleet-wide inventory alerts): among the
/// gates on one store, one holder per job at a time; a holder that stops renewing loses the
/// lease when it expires.
#[async_trait]
pub trait JobLeases {
    /// Take or renew `job` for `holder` until `now + ttl` (taken only when free, expired or
    /// already `holder`'s); whether `holder` holds it now.
    async fn hold_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError>;
    /// Give `job` up if `holder` holds it (on stop, so another gate takes over at once).
    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError>;
}

/// Usage a gate relays for the fleet-wide detectors (shared credential, frequency spike): each
/// gate writes what its requests did, batched every couple of seconds, and reads the others'.
#[async_trait]
pub trait UsageFeed {
    /// Append `rows` from gate `instance`, and drop rows older than `keep_after`.
    async fn record_usage(
        &self,
        instance: &str,
        rows: &[UsageRow],
        keep_after: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Rows past `after` (by id, oldest first) written by any gate but `instance`.
    async fn usage_since(
        &self,
        after: i64,
        instance: &str,
        limit: usize,
    ) -> Result<Vec<UsageRecord>, StoreError>;
}

/// Which gates are running on this store: each gate writes a heartbeat with its usage batch,
/// so a gate can divide a rate limit among the gates alive (see `gate::limits`).
#[async_trait]
pub trait GateHeartbeats {
    /// Record that gate `instance` is alive at `now`, forget heartbeats older than
    /// `alive_within`, and count the gates (this one included) heard from within it.
    async fn gate_heartbeat(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        alive_within: chrono::Duration,
    ) -> Result<u32, StoreError>;
    /// Remove `instance`'s heartbeat (a clean stop: the others take its share at once).
    async fn gate_stopped(&self, instance: &str) -> Result<(), StoreError>;
}

/// One store: all of the above.
#[async_trait]
pub trait Backend:
    TokenStore
    + CaStore
    + CertStore
    + RotationStore
    + AdminJournal
    + ChangeFeed
    + JobLeases
    + UsageFeed
    + GateHeartbeats
    + SigningKeyStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Where the store is, for messages (never a password).
    fn describe(&self) -> String;
    /// The schema version the store is at.
    async fn schema_version(&self) -> Result<i64, StoreError>;
    /// The file, for an embedded store.
    fn file(&self) -> Option<&std::path::Path>;
    /// Every row of the copied tables (`transfer::COPIED_TABLES`), for `store copy`.
    async fn export_tables(&self) -> Result<Vec<TableRows>, StoreError>;
    /// Write `tables` into this store, which must hold no credentials yet.
    async fn import_tables(&self, tables: &[TableRows]) -> Result<(), StoreError>;
}
