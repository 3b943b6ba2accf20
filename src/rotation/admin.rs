//! Admin audit events for rotation steps: one row in the store's admin journal (from where a
//! running gate relays it through its audit writer and bus, or the CLI appends it to the audit
//! log when no gate runs), with who, when, the step and the evidence it was decided on.
//! Writing them never fails a step that already happened; a failure comes back as a warning.

use chrono::{DateTime, Utc};

use super::{CredentialKind, Rotation};
use crate::audit::AccessEvent;
use crate::store::Store;

/// Record `action` on rotation `r`. `allowed = false` for a refused step. Returns warnings.
pub(crate) fn record(
    store: &Store,
    r: &Rotation,
    now: DateTime<Utc>,
    action: &str,
    allowed: bool,
    extra: serde_json::Value,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let details = serde_json::json!({
        "rotation_id": r.id,
        "kind": r.kind.as_str(),
        "state": r.state.as_str(),
        "old": { "name": r.old.name, "key": r.old.key, "serial": r.old.serial },
        "new": r.new.as_ref().map(|n| serde_json::json!({ "name": n.name, "key": n.key, "serial": n.serial })),
        "forced": r.forced,
        "step": extra,
    });
    let mut ev = AccessEvent::admin(now, action, &r.id, details);
    ev.allowed = allowed;
    // The old credential's identifiers, so a search for it finds its rotation too. Evidence
    // only counts `access` events, so these never count as traffic.
    match r.kind {
        CredentialKind::Token => {
            ev.service_token_id = Some(r.old.key.clone());
            ev.service_token_name = Some(r.old.name.clone());
        }
        CredentialKind::Cert => {
            ev.cert_common_name = Some(r.old.name.clone());
            ev.cert_serial = r.old.serial.clone();
            ev.cert_fingerprint_sha256 = Some(r.old.key.clone());
        }
    }
    if let Err(e) = crate::audit::admin::record(store, &r.details.audit_log, &ev, &r.id) {
        warnings.push(e.to_string());
    }
    warnings
}
