//! Credential rotation: one state machine for tokens and certificates, `created` → `added` →
//! `rolling_out` → `verified` → `revoked` (or `aborted`), persisted in the store so it survives
//! restarts. Each step is proven from the audit stream rather than trusted from memory: the
//! transitions (`machine`) are pure functions over the rotation, its traffic `evidence` and the
//! time; `workflow` performs the side effects (create, policy edits, revocation, CRL, admin
//! events); `view` is what the console renders; `cadence` says when a credential is due.
//!
//! Order matters and is enforced: the new credential exists (create) and is admitted by every
//! policy that admits the old one (add) before any client needs it; clients switch (rollout);
//! real traffic shows the new one working and the old one silent (verify); only then is the old
//! one revoked. Revoking early is refused unless forced, and a forced revoke is recorded.

mod admin;
pub mod cadence;
pub(crate) mod create;
pub mod evidence;
pub mod machine;
mod new_cn;
mod persist;
mod policies;
mod steps;
pub mod view;
pub mod workflow;

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use crate::store::rotations::RotationRow;

pub use cadence::{CadenceError, CadencePolicy, rotation_due};
pub use create::next_version_name;
pub use evidence::{Evidence, EvidenceReader};
pub use machine::{Refusal, Step, Transition, VerifyCheck};
pub use view::{RotationView, StepView, view};
pub use workflow::{
    RotatedOut, RotationEnv, StartOptions, Started, StepOutcome, abort, collect_evidence, find,
    list, next, rotated_out, start_cert, start_cert_to_cn, start_token, start_token_in_place,
};

/// Default quiet period: how long the old credential must be silent before verify passes.
pub const DEFAULT_QUIET_PERIOD: Duration = Duration::hours(1);

/// Which kind of credential a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    Token,
    Cert,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Token => "token",
            CredentialKind::Cert => "cert",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(CredentialKind::Token),
            "cert" => Some(CredentialKind::Cert),
            _ => None,
        }
    }
}

/// Where a rotation is. Only `next` and `abort` move it, one step at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// The new credential exists; no policy admits it yet.
    Created,
    /// Every policy that admits the old credential admits the new one: both are valid.
    Added,
    /// Clients are switching; the evidence is being watched.
    RollingOut,
    /// Real traffic proved the switch: new one used, old one silent for the quiet period.
    Verified,
    /// The old credential is revoked and gone from policies. Finished.
    Revoked,
    /// Stopped; the new credential was revoked and removed again. Finished.
    Aborted,
}

impl RotationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationState::Created => "created",
            RotationState::Added => "added",
            RotationState::RollingOut => "rolling_out",
            RotationState::Verified => "verified",
            RotationState::Revoked => "revoked",
            RotationState::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => RotationState::Created,
            "added" => RotationState::Added,
            "rolling_out" => RotationState::RollingOut,
            "verified" => RotationState::Verified,
            "revoked" => RotationState::Revoked,
            "aborted" => RotationState::Aborted,
            _ => return None,
        })
    }

    /// Revoked or aborted: no step is left.
    pub fn is_finished(self) -> bool {
        matches!(self, RotationState::Revoked | RotationState::Aborted)
    }
}

/// One credential of a rotation, as audit events identify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRef {
    /// Token client id, or certificate SHA-256 fingerprint (lowercase hex): what audit events
    /// carry, and unique even when two certificates share a CN.
    pub key: String,
    /// Token name, or certificate CN.
    pub name: String,
    /// Certificate serial (lowercase hex); `None` for tokens.
    #[serde(default)]
    pub serial: Option<String>,
    /// A token rotated in place (same Client ID, `rotate start token --in-place`): which of its
    /// secrets this is. Requests are told apart by their `secret_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<u32>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl CredentialRef {
    /// `ci-deploy-prod` for tokens (`ci-deploy-prod (secret v2)` rotated in place),
    /// `device-a1 (serial 4f2a…)` for certificates.
    pub fn label(&self) -> String {
        match (&self.serial, self.secret_version) {
            (Some(s), _) => format!("{} (serial {})", self.name, short(s)),
            (None, Some(v)) => format!("{} (secret v{v})", self.name),
            (None, None) => self.name.clone(),
        }
    }
}

/// First 12 characters of a long hex value, for humans.
pub(crate) fn short(hex: &str) -> String {
    if hex.len() > 12 {
        format!("{}…", &hex[..12])
    } else {
        hex.to_string()
    }
}

/// An `(app, policy)` pair, as `app_name` and `policy_name` appear in audit events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyRef {
    pub app: String,
    pub policy: String,
}

impl std::fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} of app {:?}", self.policy, self.app)
    }
}

/// One performed step, kept in the rotation's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: Step,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[serde(default)]
    pub forced: bool,
    /// What was done, one line each.
    #[serde(default)]
    pub summary: Vec<String>,
    /// The evidence at that moment.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// Everything a rotation remembers besides its columns (stored as the `details` JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RotationDetails {
    /// The audit log the evidence is read from, and where reading starts (a line boundary just
    /// before its end when the rotation started): evidence stays cheap on a large log.
    pub audit_log: PathBuf,
    pub audit_offset: u64,
    /// The policy file edited by add/revoke/abort.
    pub policy_file: PathBuf,
    /// Policies that admit the old credential (recomputed at add). New-credential requests only
    /// count towards verify when one of these, or one seen admitting the old one, allowed them.
    #[serde(default)]
    pub intended_policies: Vec<PolicyRef>,
    /// Policies the add step edited to name the new credential.
    #[serde(default)]
    pub edited_policies: Vec<PolicyRef>,
    /// Policies that admitted the new credential already (CN regex, any_service_token …).
    #[serde(default)]
    pub already_admitted: Vec<PolicyRef>,
    /// Files the new credential was written to (token secret JSON, certificate and key).
    #[serde(default)]
    pub new_credential_files: Vec<PathBuf>,
    #[serde(default)]
    pub added_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rollout_started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub aborted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<StepRecord>,
}

/// A rotation as the rest of botgate uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub id: String,
    pub kind: CredentialKind,
    pub state: RotationState,
    pub old: CredentialRef,
    pub new: Option<CredentialRef>,
    pub quiet_period: Duration,
    pub min_requests: u64,
    /// The old credential was revoked without verification passing.
    pub forced: bool,
    pub details: RotationDetails,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The `details` column: the refs in full, then the rest.
#[derive(Serialize, Deserialize)]
struct StoredDetails {
    old: CredentialRef,
    #[serde(default)]
    new: Option<CredentialRef>,
    #[serde(flatten)]
    details: RotationDetails,
}

impl Rotation {
    /// The store row for this rotation.
    pub fn to_row(&self) -> RotationRow {
        let details = serde_json::to_value(StoredDetails {
            old: self.old.clone(),
            new: self.new.clone(),
            details: self.details.clone(),
        })
        // Plain fields and string-keyed maps always serialize.
        .unwrap_or(serde_json::Value::Null);
        RotationRow {
            id: self.id.clone(),
            kind: self.kind.as_str().into(),
            old_ref: self.old.key.clone(),
            new_ref: self.new.as_ref().map(|n| n.key.clone()),
            state: self.state.as_str().into(),
            quiet_period_secs: self.quiet_period.num_seconds(),
            min_requests: i64::try_from(self.min_requests).unwrap_or(i64::MAX),
            forced: self.forced,
            details,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// Read a store row; a row botgate did not write is reported, not guessed at.
    pub fn from_row(row: RotationRow) -> Result<Self, RotationError> {
        let corrupt = |detail: String| RotationError::Corrupt {
            id: row.id.clone(),
            detail,
        };
        let kind = CredentialKind::parse(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", row.kind)))?;
        let state = RotationState::parse(&row.state)
            .ok_or_else(|| corrupt(format!("unknown state {:?}", row.state)))?;
        let stored: StoredDetails = serde_json::from_value(row.details.clone())
            .map_err(|e| corrupt(format!("details: {e}")))?;
        Ok(Self {
            id: row.id,
            kind,
            state,
            old: stored.old,
            new: stored.new,
            quiet_period: Duration::seconds(row.quiet_period_secs.max(0)),
            min_requests: u64::try_from(row.min_requests).unwrap_or(0),
            forced: row.forced,
            details: stored.details,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// A token rotation that keeps the Client ID (the new credential is a new secret).
    pub fn in_place(&self) -> bool {
        self.kind == CredentialKind::Token
            && self.old.secret_version.is_some()
            && self.new.as_ref().is_some_and(|n| n.key == self.old.key)
    }

    /// When the overlap window opened (both credentials valid), if it has.
    pub fn overlap_since(&self) -> Option<DateTime<Utc>> {
        self.details.added_at
    }
}

/// Why a rotation operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The step is refused; the reason carries the evidence.
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    NotFound(String),
    /// Something already in the way, e.g. a rotation in progress for the same credential.
    #[error("{0}")]
    Conflict(String),
    /// The caller's input is wrong (bad flag value, unusable output path).
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the policy file does not compile: {0}")]
    Compile(#[from] crate::policy::CompileError),
    #[error(transparent)]
    Edit(#[from] crate::config::edit::EditError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Store(StoreError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "rotation {id} in the store is not one botgate can read ({detail}); leave it, or delete the row"
    )]
    Corrupt { id: String, detail: String },
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => RotationError::NotFound(m),
            StoreError::Conflict(m) => RotationError::Conflict(m),
            other => RotationError::Store(other),
        }
    }
}

impl RotationError {
    /// Whether this is the caller's bad input (exit 2) rather than a refused operation (exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            RotationError::BadInput(_) | RotationError::Config(_) => true,
            RotationError::Pki(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_round_trip_keeps_everything() {
        let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
        let r = Rotation {
            id: "rot-abc123".into(),
            kind: CredentialKind::Cert,
            state: RotationState::RollingOut,
            old: CredentialRef {
                key: "aa".repeat(32),
                name: "device-a1".into(),
                serial: Some("0102".into()),
                secret_version: None,
                expires_at: Some(now),
            },
            new: Some(CredentialRef {
                key: "bb".repeat(32),
                name: "device-a1".into(),
                serial: Some("0304".into()),
                secret_version: None,
                expires_at: None,
            }),
            quiet_period: Duration::seconds(90),
            min_requests: 3,
            forced: false,
            details: RotationDetails {
                audit_log: "/x/audit.jsonl".into(),
                audit_offset: 42,
                intended_policies: vec![PolicyRef {
                    app: "api".into(),
                    policy: "CI".into(),
                }],
                added_at: Some(now),
                ..Default::default()
            },
            created_at: now,
            updated_at: now,
        };
        let back = Rotation::from_row(r.to_row()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_state_is_corrupt_not_guessed() {
        let mut row = Rotation::from_row(
            Rotation {
                id: "rot-1".into(),
                kind: CredentialKind::Token,
                state: RotationState::Created,
                old: CredentialRef {
                    key: "k".into(),
                    name: "n".into(),
                    serial: None,
                    secret_version: None,
                    expires_at: None,
                },
                new: None,
                quiet_period: DEFAULT_QUIET_PERIOD,
                min_requests: 1,
                forced: false,
                details: RotationDetails::default(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }
            .to_row(),
        )
        .unwrap()
        .to_row();
        row.state = "half-done".into();
        let err = Rotation::from_row(row).unwrap_err();
        assert!(err.to_string().contains("half-done"), "{err}");
    }
}
