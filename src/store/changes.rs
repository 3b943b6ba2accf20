//! Change-feed rows: what changed enforcement, in version order.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a change touched. Followers reload the part of the inventory it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Token,
    Cert,
    Ca,
    Crl,
    /// An assertion signing key (added or removed).
    Key,
    /// Rows that predate the change feed (a migrated store): reload everything.
    Migrated,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Token => "token",
            ChangeKind::Cert => "cert",
            ChangeKind::Ca => "ca",
            ChangeKind::Crl => "crl",
            ChangeKind::Key => "key",
            ChangeKind::Migrated => "migrated",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "token" => ChangeKind::Token,
            "cert" => ChangeKind::Cert,
            "ca" => ChangeKind::Ca,
            "crl" => ChangeKind::Crl,
            "key" => ChangeKind::Key,
            _ => ChangeKind::Migrated,
        }
    }
}

/// One row of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub version: i64,
    pub at: DateTime<Utc>,
    pub kind: ChangeKind,
    /// The credential or CA it touched (client id, fingerprint, CA name).
    pub subject: String,
}
