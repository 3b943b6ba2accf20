//! View-model types the console draws: inventory rows (tokens, certs), policy rows, rotation
//! rows (the rotation library's `RotationView`), and the credential status rule (ok / warn
//! ≤ 30 d / critical ≤ 7 d / expired). Rotation due dates are filled in by whoever builds the
//! rows, from the policy file's `[rotation]` cadence (`rotation::rotation_due`). Whoever feeds the console (the `console` verb, `demo`,
//! `serve --console`) fills these; the console never reads the store or the policy file itself.

use chrono::{DateTime, Utc};

/// One service token in the Tokens view.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub name: String,
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
    /// `botgate token disable`: refused by the gate until enabled.
    pub disabled: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// `app / policy` names whose include admits this token.
    pub policies: Vec<String>,
    /// When the `[rotation]` cadence for its name says it is due (`rotation::rotation_due`).
    pub rotation_due_at: DateTime<Utc>,
    /// Its `--allow-ip` networks and own `--rate`.
    pub bounds: crate::bounds::TokenBounds,
}

impl TokenRow {
    /// Status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> CredentialStatus {
        let status = CredentialStatus::at(self.expires_at, self.revoked, now);
        let ended = matches!(
            status,
            CredentialStatus::Revoked | CredentialStatus::Expired
        );
        if self.disabled && !ended {
            CredentialStatus::Disabled
        } else {
            status
        }
    }

    /// When the cadence for its name says this token should be rotated.
    pub fn rotation_due(&self) -> DateTime<Utc> {
        self.rotation_due_at
    }
}

/// One client certificate in the Certs view.
#[derive(Debug, Clone, PartialEq)]
pub struct CertRow {
    pub common_name: String,
    pub issuer: String,
    pub serial: String,
    pub fingerprint_sha256: String,
    pub not_after: DateTime<Utc>,
    pub key_type: String,
    pub revoked: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Where the console learned about it: `store`, `watch:/etc/certs/…`.
    pub source: String,
    /// When the `[rotation]` cadence for its CN says it is due, counted from its `not_before`
    /// (certificates every 365 days by default).
    pub rotation_due_at: DateTime<Utc>,
    /// `app / policy` of each policy that admits it (`inventory::policies_for_cert`).
    pub policies: Vec<String>,
}

impl CertRow {
    /// Status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> CredentialStatus {
        CredentialStatus::at(self.not_after, self.revoked, now)
    }

    /// When the cadence for its CN says this certificate should be rotated.
    pub fn rotation_due(&self) -> DateTime<Utc> {
        self.rotation_due_at
    }
}

/// One `[[app]]` of the policy file, with its policies in evaluation order.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRow {
    pub name: String,
    pub hostnames: Vec<String>,
    /// The origin assertion's audience tag (`None`: `assertion = false`, or not assigned yet).
    pub aud: Option<String>,
    pub policies: Vec<PolicyRow>,
}

/// One `[[app.policy]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub name: String,
    /// `service_auth`, `non_identity`, `allow`, `block`, `bypass`.
    pub action: String,
    /// Credentials (or selector descriptions) the include admits, e.g. `ci-deploy-prod`,
    /// `CN ~ ^device-.*$ (3 certs)`, `everyone`.
    pub admits: Vec<String>,
}

/// One rotation in the Rotations view: the rotation library's view-model plus the plain name
/// of the old credential (what the operator types to confirm a revoke; for certificates the
/// view's `old` is a label with the serial).
#[derive(Debug, Clone, PartialEq)]
pub struct RotationRow {
    pub view: crate::rotation::RotationView,
    /// Token name or certificate CN of the old credential.
    pub old_name: String,
}

/// Expiry status of a credential (the one classifier; `doctor` asks it too).
pub use crate::expiry::CredentialStatus;

/// One `[[oidc_issuer]]` in the Issuers view: what `botgate issuer show --json` prints, and
/// this gate's counters when the console runs in the gate's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRow {
    pub view: crate::oidc::view::IssuerView,
    /// Since the gate started; None when the console reads another process's state files.
    pub counts: Option<IssuerCounts>,
}

/// Verifications of one issuer's tokens by this gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IssuerCounts {
    pub verified: u64,
    pub refused: u64,
    /// Tokens whose `kid` the cached key set lacked (each may refresh it, once a minute).
    pub kid_misses: u64,
}

impl IssuerCounts {
    pub fn of(state: &crate::oidc::IssuerState) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &state.counters;
        Self {
            verified: c.verified.load(Relaxed),
            refused: c.refused.load(Relaxed),
            kid_misses: c.kid_misses.load(Relaxed),
        }
    }
}

/// An issuer's key set gaining or losing key ids (the gate's `oidc_keys_changed` admin event):
/// the issuer rotated its signing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChangeRow {
    pub at: DateTime<Utc>,
    /// The issuer's name in the policy file.
    pub issuer: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The key ids in the set after the change.
    pub kids: Vec<String>,
}

impl KeyChangeRow {
    /// The change an audit event records, if it is an `oidc_keys_changed` admin event.
    pub fn of_event(ev: &crate::audit::AccessEvent) -> Option<Self> {
        if ev.event != crate::audit::EventKind::Admin || ev.decision != crate::oidc::KEYS_CHANGED {
            return None;
        }
        let d = ev.details.as_ref()?;
        let issuer = d
            .get("target")?
            .as_str()?
            .strip_prefix(crate::oidc::ADMIN_TARGET)?;
        let list = |key: &str| -> Vec<String> {
            d.get("details")
                .and_then(|x| x.get(key))
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Self {
            at: ev.created_at,
            issuer: issuer.to_string(),
            added: list("added"),
            removed: list("removed"),
            kids: list("kids"),
        })
    }
}
