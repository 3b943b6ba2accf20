//! Requests the HTTP parser refuses: hyper answers them itself (400 for a bad request line or
//! header line, NUL, obs-fold, conflicting `Content-Length`, a bad `Transfer-Encoding`; 431 for
//! a head over `max_header_bytes` or `max_headers`; 414 for a target over 64 KiB) and then ends
//! the connection with the parse error. The connection task hands that error here, and the
//! refusal is audited like any other: one access event with the peer, the reason and the status
//! hyper answered, so no request goes unrecorded because it never reached the handler.

use std::error::Error as StdError;

use super::ConnInfo;
use super::deny::DenyReason;
use super::handler::{GateState, deny};
use crate::audit::event::new_ray_id;
use crate::audit::{AccessEvent, ConnectionMethod, EventKind};

/// Which refusal a connection's error is, when it is one hyper answered for a request.
pub fn refusal(err: &(dyn StdError + 'static)) -> Option<DenyReason> {
    let e = hyper_error(err)?;
    if !e.is_parse() || e.is_parse_status() || e.is_parse_version_h2() {
        return None;
    }
    Some(if e.is_parse_too_large() {
        // hyper has no public predicate for "URI too long" (414) beside "head too large" (431);
        // its message is the only difference.
        if e.to_string().starts_with("URI too long") {
            DenyReason::UriTooLong
        } else {
            DenyReason::HeadersTooLarge
        }
    } else {
        DenyReason::MalformedRequest
    })
}

/// Record the refusal `reason` of a request on `conn` that hyper could not parse.
pub fn audit(state: &GateState, conn: &ConnInfo, reason: DenyReason, err: &dyn StdError) {
    let ip = conn.peer.ip();
    let mut ev = AccessEvent::empty(EventKind::Access, state.clock.now(), new_ray_id());
    ev.ip_address = Some(ip.to_string());
    ev.country = state.geo.as_ref().and_then(|g| g.country(ip));
    if let Some(cert) = &conn.cert {
        ev.connection_method = ConnectionMethod::Mtls;
        super::handler::fill_cert(&mut ev, cert);
    }
    ev.details = Some(serde_json::json!({ "http_error": err.to_string() }));
    super::metrics::GateMetrics::inc(&state.metrics.requests);
    deny(state, &mut ev, reason);
    let _ = state.audit.record(ev);
}

/// The hyper error in `err`'s chain (hyper-util's auto connection boxes it).
fn hyper_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a hyper::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return Some(h);
        }
        cur = e.source();
    }
    None
}
