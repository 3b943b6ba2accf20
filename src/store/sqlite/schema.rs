//! Schema and migrations. Each migration runs once, in order, inside a transaction; the
//! applied version is `PRAGMA user_version`. Append new migrations, never edit old ones.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    r#"
    CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
    INSERT INTO meta (id, generation) VALUES (1, 0);

    CREATE TABLE tokens (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        client_id     TEXT NOT NULL UNIQUE,
        secret_sha256 TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        revoked_at    INTEGER,
        last_seen_at  INTEGER,
        last_seen_ip  TEXT,
        created_by    TEXT NOT NULL
    );
    -- Names are unique among tokens that are not revoked.
    CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;

    CREATE TABLE cas (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL CHECK (kind IN ('root', 'intermediate', 'trusted')),
        parent_id   INTEGER REFERENCES cas (id),
        subject     TEXT NOT NULL,
        fingerprint_sha256 TEXT NOT NULL,
        not_after   INTEGER NOT NULL,
        cert_pem    TEXT NOT NULL,
        key_pem     TEXT,
        key_type    TEXT,
        crl_path    TEXT,
        next_crl_number INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL
    );

    CREATE TABLE certs (
        id            INTEGER PRIMARY KEY,
        serial        TEXT NOT NULL,
        common_name   TEXT NOT NULL,
        issuer        TEXT NOT NULL,
        ca_id         INTEGER REFERENCES cas (id),
        fingerprint_sha256 TEXT NOT NULL UNIQUE,
        not_before    INTEGER NOT NULL,
        not_after     INTEGER NOT NULL,
        key_type      TEXT NOT NULL,
        cert_pem      TEXT NOT NULL,
        source        TEXT NOT NULL CHECK (source IN ('issued', 'watched')),
        path          TEXT,
        revoked_at    INTEGER,
        revocation_reason TEXT,
        last_seen_at  INTEGER,
        last_seen_ip  TEXT,
        created_at    INTEGER NOT NULL
    );
    CREATE INDEX certs_cn ON certs (common_name);
    CREATE INDEX certs_serial ON certs (serial);

    CREATE TABLE rotations (
        id            TEXT PRIMARY KEY,
        kind          TEXT NOT NULL CHECK (kind IN ('token', 'cert')),
        old_ref       TEXT NOT NULL,
        new_ref       TEXT,
        state         TEXT NOT NULL,
        quiet_period_secs INTEGER NOT NULL,
        min_requests  INTEGER NOT NULL,
        forced        INTEGER NOT NULL DEFAULT 0,
        details       TEXT NOT NULL DEFAULT '{}',
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );

    CREATE TABLE admin_audit (
        id         INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        details    TEXT NOT NULL
    );
    "#,
    // 2: PKI. The latest CRL each local CA issued (the gate loads it without re-signing), and
    // sightings of every client certificate the gate accepted, including certs botgate did not
    // issue (`certs` only holds issued and watched ones).
    r#"
    ALTER TABLE cas ADD COLUMN crl_der BLOB;
    ALTER TABLE cas ADD COLUMN crl_this_update INTEGER;
    ALTER TABLE cas ADD COLUMN crl_next_update INTEGER;

    CREATE TABLE cert_sightings (
        fingerprint_sha256 TEXT PRIMARY KEY,
        serial        TEXT NOT NULL,
        common_name   TEXT,
        issuer        TEXT NOT NULL,
        not_after     INTEGER,
        first_seen_at INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        last_seen_ip  TEXT
    );
    "#,
    // 3: the whole certificate of each sighting (the gate had it in the handshake), so `cert
    // list|show` know validity, key type, issuer and SANs of certificates botgate did not issue.
    r#"
    ALTER TABLE cert_sightings ADD COLUMN cert_pem TEXT;
    "#,
    // 4: the admin journal. Each row carries the audit line it becomes; every audit file reads
    // the journal past its own cursor (a running gate holds the file's writer lease). Rows from
    // before this migration were appended to the audit file directly: the floor skips them.
    r#"
    ALTER TABLE admin_audit ADD COLUMN event TEXT;
    ALTER TABLE meta ADD COLUMN journal_floor INTEGER NOT NULL DEFAULT 0;
    UPDATE meta SET journal_floor = (SELECT COALESCE(MAX(id), 0) FROM admin_audit);

    CREATE TABLE audit_cursors (
        audit_log TEXT PRIMARY KEY,
        last_id   INTEGER NOT NULL
    );
    CREATE TABLE audit_writers (
        audit_log    TEXT PRIMARY KEY,
        holder       TEXT NOT NULL,
        heartbeat_at INTEGER NOT NULL
    );
    "#,
    // 5: the change feed replaces the generation counter: one row per enforcement change, in
    // the change's transaction, with a version that only grows. A store migrated from the
    // counter starts its feed past it (one `migrated` row) so followers reload once.
    r#"
    CREATE TABLE changes (
        version INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        kind    TEXT NOT NULL,
        subject TEXT NOT NULL
    );
    INSERT INTO changes (version, at, kind, subject)
        SELECT generation, CAST(strftime('%s', 'now') AS INTEGER) * 1000, 'migrated', ''
        FROM meta WHERE id = 1 AND generation > 0;
    "#,
    // 6: a token can be disabled (refused, kept in the inventory) and enabled again.
    r#"
    ALTER TABLE tokens ADD COLUMN disabled_at INTEGER;
    "#,
    // 7: leases for one-node jobs (one gate among several re-signs CRLs, raises inventory alerts).
    r#"
    CREATE TABLE job_leases (
        job        TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    "#,
    // 8: the usage feed (per-gate request batches for the fleet-wide detectors).
    r#"
    CREATE TABLE usage (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        at       INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        event    TEXT NOT NULL
    );
    CREATE INDEX usage_at ON usage (at);
    "#,
    // 9: keys that sign the origin assertion (shared by every gate) and each app's audience tag.
    r#"
    CREATE TABLE signing_keys (
        kid          TEXT PRIMARY KEY,
        alg          TEXT NOT NULL,
        private_pem  TEXT NOT NULL,
        public_jwk   TEXT NOT NULL,
        cert_pem     TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        activates_at INTEGER NOT NULL,
        announced    TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE app_audiences (
        app        TEXT PRIMARY KEY,
        aud        TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    "#,
    // 10: a token's secret can be rotated in place: the previous secret's hash stays valid until
    // its grace period ends; `secret_version` counts the secrets issued for the Client ID.
    r#"
    ALTER TABLE tokens ADD COLUMN secret_version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE tokens ADD COLUMN previous_secret_sha256 TEXT;
    ALTER TABLE tokens ADD COLUMN previous_secret_expires_at INTEGER;
    "#,
    // 11: a token's own bounds (networks it may be used from, its rate limit), and one
    // heartbeat per running gate so each can take its share of a rate limit.
    r#"
    ALTER TABLE tokens ADD COLUMN allow_ips TEXT;
    ALTER TABLE tokens ADD COLUMN rate_limit TEXT;
    CREATE TABLE gate_heartbeats (
        instance TEXT PRIMARY KEY,
        at       INTEGER NOT NULL
    );
    "#,
];

/// Apply every migration newer than the file's `user_version`.
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}
