//! The in-memory view of credentials the request path reads: an immutable `CredentialSnapshot`
//! behind an `ArcSwap`, rebuilt from the inventory hub whenever the store's change feed moves
//! (another process creating or revoking a token is enforced within one hub poll).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::credential::SecretHash;
use tokio::sync::watch;

use crate::store::hub::Inventory;
use crate::store::{Store, StoreError};

/// How often `on_poll` runs (external TLS files are checked).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// One token as the gate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: Box<str>,
    pub secret_hash: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    pub disabled: bool,
    /// The current secret's version (1, 2, … per `token rotate-secret`).
    pub secret_version: u32,
    /// The previous secret and until when it is accepted.
    pub previous: Option<(SecretHash, DateTime<Utc>)>,
    /// Its networks and rate limit, enforced after the secret and status checks.
    pub bounds: crate::bounds::TokenBounds,
}

impl TokenEntry {
    /// Why this token, presented with its right secret, is refused at `now`: the one status
    /// check the gate and `policy explain` make.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<super::deny::DenyReason> {
        use super::deny::DenyReason;
        if self.revoked {
            Some(DenyReason::TokenRevoked)
        } else if self.disabled {
            Some(DenyReason::TokenDisabled)
        } else if self.expires_at <= now {
            Some(DenyReason::TokenExpired)
        } else {
            None
        }
    }

    /// Why this live token is refused from `ip` (outside its `--allow-ip` networks): the one
    /// network check the gate and `policy explain` make, after `refusal`.
    pub fn ip_refusal(&self, ip: std::net::IpAddr) -> Option<super::deny::DenyReason> {
        (!self.bounds.ip_allowed(ip)).then_some(super::deny::DenyReason::TokenIpNotAllowed)
    }
}

/// Everything the request path knows about credentials, immutable once built.
#[derive(Debug, Default)]
pub struct CredentialSnapshot {
    /// The change-feed version it was built from.
    pub version: i64,
    /// Keyed by client id (shared: the rate limiter keys buckets with it without copying).
    pub tokens: HashMap<std::sync::Arc<str>, TokenEntry>,
    /// Certificates revoked in botgate, by fingerprint, enforced even without a CRL.
    pub revoked_certs: crate::pki::RevokedCerts,
    /// Live certificates by fingerprint, for expiry gauges.
    pub cert_expiry: BTreeMap<Box<str>, CertExpiry>,
    /// The keys that sign the origin assertion, and the published key set.
    pub keys: Arc<crate::assertion::KeyRing>,
}

impl CredentialSnapshot {
    /// The token a client presenting `name`'s current credentials uses: of the tokens with that
    /// name (a revoked one may share it with its replacement), the one the gate admits at `now`,
    /// else the one that expires last. The gate itself looks tokens up by Client ID; this is for
    /// questions asked by name (`policy explain --token NAME`).
    pub fn token_named(&self, name: &str, now: DateTime<Utc>) -> Option<&TokenEntry> {
        self.tokens
            .values()
            .filter(|t| &*t.name == name)
            .max_by_key(|t| (t.refusal(now).is_none(), t.expires_at))
    }
}

/// A certificate's expiry as `/metrics` reports it.
#[derive(Debug, Clone)]
pub struct CertExpiry {
    pub common_name: String,
    pub serial: String,
    pub not_after: DateTime<Utc>,
}

impl CredentialSnapshot {
    /// Read the store once (for one-shot commands: `policy explain`, `inspect`).
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        Ok(Self::from_inventory(&crate::store::wait(Inventory::read(
            store,
        ))?))
    }

    /// What the request path needs of an inventory.
    pub fn from_inventory(inv: &Inventory) -> Self {
        let tokens = inv
            .tokens
            .iter()
            .map(|t| {
                let entry = TokenEntry {
                    name: t.name.as_str().into(),
                    secret_hash: t.secret_hash,
                    expires_at: t.expires_at,
                    revoked: t.revoked_at.is_some(),
                    disabled: t.disabled_at.is_some(),
                    secret_version: u32::try_from(t.secret_version).unwrap_or(1),
                    previous: t.previous_secret_hash.zip(t.previous_secret_expires_at),
                    bounds: t.bounds.clone(),
                };
                (t.client_id.as_str().into(), entry)
            })
            .collect();
        let revoked_certs = inv
            .certs
            .iter()
            .filter_map(|c| Some((c.fingerprint_sha256.clone(), c.revoked_at?)))
            .collect();
        let cert_expiry = inv
            .certs
            .iter()
            .filter(|c| c.revoked_at.is_none())
            .map(|c| {
                (
                    c.fingerprint_sha256.as_str().into(),
                    CertExpiry {
                        common_name: c.common_name.clone(),
                        serial: c.serial.clone(),
                        not_after: c.not_after,
                    },
                )
            })
            .collect();
        Self {
            version: inv.version,
            tokens,
            revoked_certs,
            cert_expiry,
            keys: Arc::new(crate::assertion::KeyRing::from_records(&inv.signing_keys)),
        }
    }
}

/// Keeps a shared snapshot in step with the inventory hub until dropped.
#[derive(Debug)]
pub struct SnapshotRefresher {
    task: tokio::task::JoinHandle<()>,
}

impl SnapshotRefresher {
    /// Swap `target` whenever the hub publishes a new inventory version. `on_change` runs after
    /// each rebuild (e.g. to rebuild TLS configs), and `on_poll` every `POLL_INTERVAL` without a
    /// change (e.g. to check external files). Inside a tokio runtime.
    pub fn start(
        mut inventory: watch::Receiver<Arc<Inventory>>,
        target: Arc<ArcSwap<CredentialSnapshot>>,
        on_change: Box<dyn Fn() + Send>,
        on_poll: Box<dyn Fn() + Send>,
    ) -> Self {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    changed = inventory.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let inv = inventory.borrow_and_update().clone();
                        if inv.version != target.load().version {
                            let s = CredentialSnapshot::from_inventory(&inv);
                            tracing::info!(version = s.version, tokens = s.tokens.len(), "credential snapshot rebuilt");
                            target.store(Arc::new(s));
                            on_change();
                        }
                    }
                    _ = tick.tick() => on_poll(),
                }
            }
        });
        Self { task }
    }
}

impl Drop for SnapshotRefresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
