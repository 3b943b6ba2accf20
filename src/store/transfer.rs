//! Moving a store's rows to another backend (`botgate store copy`): both schemas have the same
//! tables and columns, so rows travel table by table as plain cells.

/// The tables a copy moves, parents before children. Writer leases are not copied (they
/// belong to running gates of the source).
pub const COPIED_TABLES: &[&str] = &[
    "meta",
    "tokens",
    "cas",
    "certs",
    "cert_sightings",
    "rotations",
    "admin_audit",
    "audit_cursors",
    "changes",
    "signing_keys",
    "app_audiences",
];

/// The columns of `meta` a copy moves (the rest of SQLite's `meta` is history).
pub const META_COLUMNS: &[&str] = &["id", "journal_floor"];

/// One value as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// Every row of one table.
#[derive(Debug, Clone)]
pub struct TableRows {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}
