//! Rotation rows (table `rotations` of migration 1). The store keeps them as plain rows; what
//! the columns mean (states, details) belongs to `rotation/`, which converts. Rotations do not
//! change what the gate enforces, so writes here never bump the generation.

use chrono::{DateTime, Utc};

/// One stored rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct RotationRow {
    /// Short typeable id, e.g. `rot-4f2a9c`.
    pub id: String,
    /// `token` or `cert`.
    pub kind: String,
    /// Token client id or certificate SHA-256 fingerprint of the credential being replaced.
    pub old_ref: String,
    /// The same for the replacement, once created.
    pub new_ref: Option<String>,
    pub state: String,
    pub quiet_period_secs: i64,
    pub min_requests: i64,
    pub forced: bool,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
