//! The admin listener: `/healthz`, `/metrics` (Prometheus text) and `/events` (server-sent
//! events of the bus). Metrics are aggregated from the bus by their own task, off the request path.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use super::forward::GateBody;
use super::handler::GateState;
use crate::audit::{AuditBus, BusMessage, EventKind};
use crate::detect::{Rule, Severity};
use crate::store::hub::Inventory;

/// Latency histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Labelled counters built from access events.
#[derive(Debug, Default)]
pub struct TrafficMetrics {
    /// (app, decision, connection_method, status) → count.
    requests: BTreeMap<(String, String, String, u16), u64>,
    latency_buckets: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    /// Alert id → (rule, severity, still open).
    alerts: BTreeMap<String, (Rule, Severity, bool)>,
    /// Alert events whose details are not an `Alert` (e.g. from a newer botgate).
    unreadable_alerts: u64,
    /// (action, allowed) → admin events (token/CA/cert changes, rotation steps, reloads).
    admin: BTreeMap<(String, bool), u64>,
    lagged: u64,
}

impl TrafficMetrics {
    fn observe(&mut self, ev: &crate::audit::AccessEvent) {
        match ev.event {
            EventKind::Access => {
                let key = (
                    ev.app_name.clone().unwrap_or_default(),
                    ev.decision.clone(),
                    ev.connection_method.as_str().to_string(),
                    ev.status.unwrap_or(0),
                );
                *self.requests.entry(key).or_default() += 1;
                if let Some(ms) = ev.latency_ms {
                    let s = ms / 1000.0;
                    self.latency_count += 1;
                    self.latency_sum += s;
                    for (i, b) in BUCKETS.iter().enumerate() {
                        if s <= *b {
                            self.latency_buckets[i] += 1;
                        }
                    }
                }
            }
            EventKind::Alert => match crate::detect::Alert::from_event(ev) {
                Ok(a) => {
                    let open = a.state == crate::detect::AlertState::Open;
                    self.alerts.insert(a.alert_id, (a.rule, a.severity, open));
                }
                Err(_) => self.unreadable_alerts += 1,
            },
            EventKind::Admin => {
                *self
                    .admin
                    .entry((ev.decision.clone(), ev.allowed))
                    .or_default() += 1;
            }
        }
    }
}

/// Aggregate the bus into `metrics` until shutdown.
pub async fn aggregate(
    bus: AuditBus,
    metrics: Arc<Mutex<TrafficMetrics>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rx = bus.subscribe();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(BusMessage::Event(ev)) => lock(&metrics).observe(&ev),
                Err(broadcast::error::RecvError::Lagged(n)) => lock(&metrics).lagged += n,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

fn lock(m: &Mutex<TrafficMetrics>) -> std::sync::MutexGuard<'_, TrafficMetrics> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serve the admin endpoints until shutdown.
pub async fn serve(
    listener: TcpListener,
    state: Arc<GateState>,
    metrics: Arc<Mutex<TrafficMetrics>>,
    store: watch::Receiver<Arc<Inventory>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (state, metrics, store) = (state.clone(), metrics.clone(), store.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| route(state.clone(), metrics.clone(), store.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn route(
    state: Arc<GateState>,
    metrics: Arc<Mutex<TrafficMetrics>>,
    store: watch::Receiver<Arc<Inventory>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<GateBody>, Infallible> {
    Ok(match req.uri().path() {
        "/healthz" => {
            let (code, body) = health(&state, &store.borrow());
            text(code, "application/json", body.to_string())
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            render(&state, &lock(&metrics), &store.borrow()),
        ),
        "/events" => events(state.audit.bus()),
        crate::assertion::CERTS_PATH => {
            let keys = state.snapshot.load().keys.clone();
            let body = super::assertion::key_set_body(&keys, state.clock.now());
            text(
                StatusCode::OK,
                "application/json",
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!(
                "not found: try /healthz, /metrics, /events or {}\n",
                crate::assertion::CERTS_PATH
            ),
        ),
    })
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<GateBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// Server-sent events: one `data:` line per bus event, from now on.
fn events(bus: &AuditBus) -> Response<GateBody> {
    let rx = bus.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let text = match rx.recv().await {
            Ok(BusMessage::Event(ev)) => format!("data: {}\n\n", ev.to_json_line()),
            Err(broadcast::error::RecvError::Lagged(n)) => format!(": lagged {n} events\n\n"),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, hyper::Error>(Frame::data(Bytes::from(text))), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// Prometheus text exposition format.
/// `/healthz`: 503 while the audit log fails (the gate refuses requests then); 200 with status
/// `store_unreachable` while the store cannot be read, because the gate still enforces from its
/// last snapshot (a load balancer that pulled every gate of a fleet whose shared database is
/// down would refuse requests the gates can still decide).
fn health(state: &GateState, inv: &Inventory) -> (StatusCode, serde_json::Value) {
    // Failing from the first failed write or open of the audit log to the next success.
    let audit_error = state.audit.health().last_error();
    let store = serde_json::json!({
        "reachable": inv.store_error.is_none(),
        "version": inv.version,
        "read_at": inv.read_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "error": inv.store_error,
    });
    match (audit_error, &inv.store_error) {
        (Some(error), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "audit_failing", "error": error, "store": store }),
        ),
        (None, Some(error)) => (
            StatusCode::OK,
            serde_json::json!({ "status": "store_unreachable", "error": error, "store": store }),
        ),
        (None, None) => (
            StatusCode::OK,
            serde_json::json!({ "status": "ok", "store": store }),
        ),
    }
}

fn render(state: &GateState, m: &TrafficMetrics, inv: &Inventory) -> String {
    let mut out = String::with_capacity(4096);
    let g = &state.metrics;
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(
        out,
        "# HELP botgate_requests_total Requests by app, decision, connection method and status.\n# TYPE botgate_requests_total counter"
    );
    for ((app, decision, method, status), n) in &m.requests {
        let _ = writeln!(
            out,
            "botgate_requests_total{{app=\"{}\",decision=\"{}\",connection_method=\"{}\",status=\"{status}\"}} {n}",
            esc(app),
            esc(decision),
            esc(method)
        );
    }
    let _ = writeln!(
        out,
        "# HELP botgate_request_duration_seconds Time from request to response head.\n# TYPE botgate_request_duration_seconds histogram"
    );
    for (b, n) in BUCKETS.iter().zip(m.latency_buckets) {
        let _ = writeln!(
            out,
            "botgate_request_duration_seconds_bucket{{le=\"{b}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "botgate_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        m.latency_count
    );
    let _ = writeln!(
        out,
        "botgate_request_duration_seconds_sum {}\nbotgate_request_duration_seconds_count {}",
        m.latency_sum, m.latency_count
    );
    let _ = writeln!(
        out,
        "# HELP botgate_store_up Whether the last read of the store succeeded (0: enforcing from the last snapshot).\n# TYPE botgate_store_up gauge\nbotgate_store_up {}",
        u8::from(inv.store_error.is_none())
    );
    let _ = writeln!(
        out,
        "# HELP botgate_store_change_version The store change-feed version this gate's snapshot was read at.\n# TYPE botgate_store_change_version gauge\nbotgate_store_change_version {}",
        inv.version
    );
    counter(
        &mut out,
        "botgate_audit_write_failures_total",
        "Events the audit log could not take.",
        state.audit.health().failures.load(Relaxed),
    );
    counter(
        &mut out,
        "botgate_audit_events_written_total",
        "Events written to the audit log.",
        state.audit.health().written.load(Relaxed),
    );
    counter(
        &mut out,
        "botgate_audit_refusals_total",
        "Requests refused because the audit log could not be written.",
        g.audit_refusals.load(Relaxed),
    );
    counter(
        &mut out,
        "botgate_upstream_errors_total",
        "Upstream connection failures and timeouts.",
        g.upstream_errors.load(Relaxed),
    );
    counter(
        &mut out,
        "botgate_tls_handshake_failures_total",
        "TLS handshakes refused.",
        g.tls_handshake_failures.load(Relaxed),
    );
    counter(
        &mut out,
        "botgate_spoofed_forwarded_for_total",
        "Requests from untrusted peers whose forwarding headers (X-Forwarded-For, X-Real-IP, Forwarded, ...) were removed.",
        g.spoofed_forwarded_for.load(Relaxed),
    );
    counter(
        &mut out,
        "botgate_metrics_events_lagged_total",
        "Bus events the metrics aggregator missed.",
        m.lagged,
    );
    let _ = writeln!(
        out,
        "# HELP botgate_admin_events_total Admin events (from the store's journal and this gate's reloads) by action and outcome.\n# TYPE botgate_admin_events_total counter"
    );
    for ((action, allowed), n) in &m.admin {
        let _ = writeln!(
            out,
            "botgate_admin_events_total{{action=\"{}\",allowed=\"{allowed}\"}} {n}",
            esc(action)
        );
    }
    let reloads = |action: &str| {
        m.admin
            .iter()
            .filter(|((a, _), _)| a == action)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let _ = writeln!(
        out,
        "# HELP botgate_policy_reloads_total Policy file changes applied or rejected (the last good policy stays).\n# TYPE botgate_policy_reloads_total counter\nbotgate_policy_reloads_total{{result=\"applied\"}} {}\nbotgate_policy_reloads_total{{result=\"rejected\"}} {}",
        reloads("policy_reload"),
        reloads("policy_reload_rejected")
    );
    let _ = writeln!(
        out,
        "# HELP botgate_alerts_open Alerts currently open, by detector rule and severity.\n# TYPE botgate_alerts_open gauge"
    );
    let mut open: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (rule, severity, is_open) in m.alerts.values() {
        *open.entry((rule.as_str(), severity.label())).or_default() += u64::from(*is_open);
    }
    for ((rule, severity), n) in open {
        let _ = writeln!(
            out,
            "botgate_alerts_open{{rule=\"{rule}\",severity=\"{severity}\"}} {n}"
        );
    }
    counter(
        &mut out,
        "botgate_alert_events_unreadable_total",
        "Alert events whose details are not a botgate alert.",
        m.unreadable_alerts,
    );
    let _ = writeln!(
        out,
        "# HELP botgate_token_expiry_timestamp_seconds Expiry of each live service token (unix time).\n# TYPE botgate_token_expiry_timestamp_seconds gauge"
    );
    let snapshot = state.snapshot.load();
    let mut tokens: Vec<_> = snapshot.tokens.iter().filter(|(_, t)| !t.revoked).collect();
    tokens.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    for (id, t) in tokens {
        let _ = writeln!(
            out,
            "botgate_token_expiry_timestamp_seconds{{name=\"{}\",client_id=\"{}\"}} {}",
            esc(&t.name),
            esc(id),
            t.expires_at.timestamp()
        );
    }
    oidc_metrics(&mut out, state);
    for (fp, c) in snapshot.cert_expiry.iter() {
        let _ = writeln!(
            out,
            "x509_cert_not_after{{common_name=\"{}\",serial=\"{}\",fingerprint_sha256=\"{}\"}} {}",
            esc(&c.common_name),
            esc(&c.serial),
            esc(fp),
            c.not_after.timestamp()
        );
    }
    out
}

/// Per `[[oidc_issuer]]`: verifications, refusals, cached-key hits and kid misses, the key
/// set's age and failed refreshes in a row.
fn oidc_metrics(out: &mut String, state: &GateState) {
    use std::sync::atomic::Ordering::Relaxed;
    let issuers = state.oidc.all();
    if issuers.is_empty() {
        return;
    }
    let now = state.clock.now();
    let series: [(&str, &str, &str); 7] = [
        (
            "botgate_oidc_verified_total",
            "counter",
            "Workload tokens that verified.",
        ),
        (
            "botgate_oidc_refused_total",
            "counter",
            "Workload tokens of this issuer refused (signature, claims, time).",
        ),
        (
            "botgate_oidc_key_cache_hits_total",
            "counter",
            "Verifications whose key was in the cached key set (no fetch).",
        ),
        (
            "botgate_oidc_kid_misses_total",
            "counter",
            "Tokens naming a kid the cached key set did not hold (each may refresh it, at most once a minute).",
        ),
        (
            "botgate_oidc_token_cache_hits_total",
            "counter",
            "Requests whose token had verified before (the verified-token cache; no signature check).",
        ),
        (
            "botgate_oidc_key_set_age_seconds",
            "gauge",
            "Age of the key set in use (since this gate started using the issuer when it has none).",
        ),
        (
            "botgate_oidc_refresh_failures",
            "gauge",
            "Failed key-set refreshes since the last good one.",
        ),
    ];
    for (i, (name, kind, help)) in series.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &issuers {
            let c = &s.counters;
            let v = match i {
                0 => c.verified.load(Relaxed) as i64,
                1 => c.refused.load(Relaxed) as i64,
                2 => c.cache_hits.load(Relaxed) as i64,
                3 => c.kid_misses.load(Relaxed) as i64,
                4 => c.token_cache_hits.load(Relaxed) as i64,
                5 => s.key_age(now).num_seconds(),
                _ => s.status().failures as i64,
            };
            let _ = writeln!(out, "{name}{{issuer=\"{}\"}} {v}", esc(&s.settings.name));
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
