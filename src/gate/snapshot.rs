//! The in-memory view of credentials the request path reads: an immutable `CredentialSnapshot`
//! behind an `ArcSwap`, rebuilt by a background thread when the store's generation changes
//! (another process creating or revoking a token is enforced within one poll interval).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::credential::SecretHash;
use crate::store::{Store, StoreError};

/// How often the store generation is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// One token as the gate needs it.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub name: Box<str>,
    pub secret_hash: SecretHash,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

impl TokenEntry {
    /// Why this token, presented with its right secret, is refused at `now`: the one status
    /// check the gate and `policy explain` make.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<super::deny::DenyReason> {
        use super::deny::DenyReason;
        if self.revoked {
            Some(DenyReason::TokenRevoked)
        } else if self.expires_at <= now {
            Some(DenyReason::TokenExpired)
        } else {
            None
        }
    }
}

/// Everything the request path knows about credentials, immutable once built.
#[derive(Debug, Default)]
pub struct CredentialSnapshot {
    pub generation: i64,
    /// Keyed by client id.
    pub tokens: HashMap<Box<str>, TokenEntry>,
    /// Certificates revoked in botgate, by fingerprint, enforced even without a CRL.
    pub revoked_certs: crate::pki::RevokedCerts,
    /// Live certificates by fingerprint, for expiry gauges.
    pub cert_expiry: BTreeMap<Box<str>, CertExpiry>,
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
    /// Build from the store.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let generation = store.generation()?;
        let tokens = store
            .list_tokens()?
            .into_iter()
            .map(|t| {
                let entry = TokenEntry {
                    name: t.name.into(),
                    secret_hash: t.secret_hash,
                    expires_at: t.expires_at,
                    revoked: t.revoked_at.is_some(),
                };
                (t.client_id.into_boxed_str(), entry)
            })
            .collect();
        let revoked_certs = store
            .revoked_certs()?
            .into_iter()
            .map(|c| (c.fingerprint_sha256, c.revoked_at))
            .collect();
        let cert_expiry = store
            .list_certs()?
            .into_iter()
            .filter(|c| c.revoked_at.is_none())
            .map(|c| {
                (
                    c.fingerprint_sha256.into_boxed_str(),
                    CertExpiry {
                        common_name: c.common_name,
                        serial: c.serial,
                        not_after: c.not_after,
                    },
                )
            })
            .collect();
        Ok(Self {
            generation,
            tokens,
            revoked_certs,
            cert_expiry,
        })
    }
}

/// Keeps a shared snapshot fresh until dropped.
#[derive(Debug)]
pub struct SnapshotRefresher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SnapshotRefresher {
    /// Poll `store` and swap `target` whenever the generation moves.
    /// `on_change` runs on this thread after each rebuild (e.g. to rebuild TLS configs), and
    /// `on_poll` on every poll without a store change (e.g. to check external files).
    pub fn start(
        store: Arc<Store>,
        target: Arc<ArcSwap<CredentialSnapshot>>,
        on_change: Box<dyn Fn() + Send>,
        on_poll: Box<dyn Fn() + Send>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new().name("snapshot-refresh".into()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(POLL_INTERVAL);
                let current = target.load().generation;
                match store.generation() {
                    Ok(g) if g != current => match CredentialSnapshot::load(&store) {
                        Ok(s) => {
                            tracing::info!(generation = s.generation, tokens = s.tokens.len(), "credential snapshot rebuilt");
                            target.store(Arc::new(s));
                            on_change();
                        }
                        Err(e) => tracing::error!(error = %e, "cannot rebuild the credential snapshot; keeping the last one"),
                    },
                    Ok(_) => on_poll(),
                    Err(e) => tracing::error!(error = %e, "cannot read the store generation"),
                }
            }
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SnapshotRefresher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
