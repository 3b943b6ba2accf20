//! Admin events outside the gate: how a CLI verb (token, CA/cert, rotation step) records one.
//! The event goes into the store's admin journal (with the change, where the store offers it);
//! a running gate relays journal rows through its one audit writer and bus (see
//! `runtime::journal`). When no gate holds the audit file's writer lease, the CLI appends the
//! pending rows to the file itself, so no admin history is lost and no line is written twice.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::AccessEvent;
use crate::store::{AdminEntry, Delivery, JournalRow, Store, StoreError};

/// Recording an admin event failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminRecordError {
    #[error("could not record the admin event in the store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the admin event is in the store's journal but could not be appended to {path}: {source} (it is written there on the next botgate command or gate start)"
    )]
    Append {
        path: String,
        source: std::io::Error,
    },
}

/// The journal entry for an admin event (`AccessEvent::admin`) about `target`.
pub fn entry(ev: &AccessEvent, target: &str) -> AdminEntry {
    AdminEntry {
        at: ev.created_at,
        action: ev.decision.clone(),
        target: target.to_string(),
        details: ev.details.clone().unwrap_or(serde_json::Value::Null),
        event_line: ev.to_json_line(),
    }
}

/// The journal entry for `action` on token `t`: its name, Client ID, expiry and secret
/// versions in `details`, plus `extra`'s fields (the one shape every token admin event has,
/// whoever writes it: a CLI verb, a rotation step, the retirement sweep).
pub fn token_entry(
    now: DateTime<Utc>,
    action: &str,
    t: &crate::store::TokenRecord,
    extra: serde_json::Value,
) -> AdminEntry {
    let mut details = serde_json::json!({
        "name": t.name, "client_id": t.client_id, "expires_at": crate::clock::rfc3339(t.expires_at),
        "secret_version": t.secret_version,
        "previous_secret_expires_at": t.previous_secret_expires_at.map(crate::clock::rfc3339),
    });
    if let (Some(d), serde_json::Value::Object(extra)) = (details.as_object_mut(), extra) {
        d.extend(extra);
    }
    let mut ev = AccessEvent::admin(now, action, &t.name, details);
    ev.service_token_id = Some(t.client_id.clone());
    ev.service_token_name = Some(t.name.clone());
    entry(&ev, &t.name)
}

/// Journal `ev` on its own (the change it describes is already stored) and deliver it.
pub fn record(
    store: &Store,
    audit_log: &Path,
    ev: &AccessEvent,
    target: &str,
) -> Result<(), AdminRecordError> {
    crate::store::wait(store.record_admin(&entry(ev, target)))?;
    deliver_pending(store, audit_log, ev.created_at).map(|_| ())
}

/// Append the journal rows `audit_log` has not seen yet, unless a gate relays them.
pub fn deliver_pending(
    store: &Store,
    audit_log: &Path,
    now: DateTime<Utc>,
) -> Result<Delivery, AdminRecordError> {
    let key = journal_key(audit_log);
    crate::store::wait(store.deliver_journal(&key, now, &mut |rows| append_rows(audit_log, rows)))?
        .map_err(|source| AdminRecordError::Append { path: key, source })
}

/// The name an audit file's cursor and writer lease go by: its absolute path, the same from
/// every process whatever its working directory.
pub fn journal_key(audit_log: &Path) -> String {
    let dir = audit_log.parent().filter(|d| !d.as_os_str().is_empty());
    let resolved = match (dir, audit_log.file_name()) {
        (Some(d), Some(name)) => std::fs::canonicalize(d).map(|d| d.join(name)).ok(),
        _ => None,
    };
    resolved
        .or_else(|| std::path::absolute(audit_log).ok())
        .unwrap_or_else(|| audit_log.to_path_buf())
        .display()
        .to_string()
}

/// One `write` of every row with `O_APPEND` (lines never interleave with another writer's).
fn append_rows(path: &Path, rows: &[JournalRow]) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for r in rows {
        text.push_str(&r.event_line);
        text.push('\n');
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cli_run_with_no_gate_appends_each_admin_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = dir.path().join("audit.jsonl");
        let now = Utc::now();
        for name in ["a", "b"] {
            let ev = AccessEvent::admin(now, "token_create", name, serde_json::json!({}));
            record(&store, &log, &ev, name).unwrap();
        }
        deliver_pending(&store, &log, now).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
