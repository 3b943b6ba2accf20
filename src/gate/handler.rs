//! One request through the gate: route by host, identify, evaluate, forward or refuse, and
//! record exactly one access event.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use ipnet::IpNet;

use super::deny::DenyReason;
use super::forward::{self, ForwardIdentity, ProxyBody, UpstreamClient};
use super::identify::{TokenCheck, check_token};
use super::metrics::GateMetrics;
use super::snapshot::CredentialSnapshot;
use super::upstream::{NotTaken, StickyUpstream};
use crate::audit::event::new_ray_id;
use crate::audit::{AccessEvent, AuditSink, AuditUnavailable, ConnectionMethod, EventKind};
use crate::clock::SharedClock;
use crate::config::AuditFailure;
use crate::policy::{self, CertIdentity, Identity, PolicySet, Verdict};

/// IP → country, e.g. from a CSV or mmdb database.
pub trait CountryLookup: Send + Sync + std::fmt::Debug {
    fn country(&self, ip: IpAddr) -> Option<String>;
}

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct GateState {
    pub policies: Arc<ArcSwap<PolicySet>>,
    pub snapshot: Arc<ArcSwap<CredentialSnapshot>>,
    pub audit: AuditSink,
    pub audit_failure: AuditFailure,
    pub client: UpstreamClient,
    pub trusted_proxies: Vec<IpNet>,
    pub geo: Option<Arc<dyn CountryLookup>>,
    pub clock: SharedClock,
    pub metrics: GateMetrics,
    pub upstream_timeout: Duration,
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// A client certificate that passed chain verification.
    pub cert: Option<Arc<PeerCert>>,
}

/// One downstream connection: its facts and its sticky upstream connection.
#[derive(Debug)]
pub struct Downstream {
    pub info: ConnInfo,
    pub upstream: StickyUpstream,
}

/// A verified client certificate.
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub identity: CertIdentity,
    pub subject: String,
}

/// hyper service entry point.
pub async fn handle(
    state: Arc<GateState>,
    downstream: Arc<Downstream>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let now = state.clock.now();
    let conn = &downstream.info;
    let client_ip = client_ip(&state, conn.peer.ip(), req.headers());
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");

    let mut ev = AccessEvent::empty(EventKind::Access, now, new_ray_id());
    ev.ip_address = Some(ip_string(client_ip));
    ev.country = state.geo.as_ref().and_then(|g| g.country(client_ip));
    ev.user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ev.method = Some(req.method().as_str().to_string());
    ev.host = Some(policy::strip_port(host).to_string());
    ev.path = Some(req.uri().path().to_string());
    GateMetrics::inc(&state.metrics.requests);

    let policies = state.policies.load();
    let Some(app) = policies.app_for_host(host) else {
        return Ok(refuse(&state, ev, started, DenyReason::UnknownHost).await);
    };
    ev.app_name = Some(app.name.clone());

    let snapshot = state.snapshot.load();
    let token = check_token(req.headers(), &snapshot, now);
    let identity = match token {
        TokenCheck::Refused {
            reason,
            client_id,
            name,
        } => {
            ev.connection_method = ConnectionMethod::ServiceToken;
            ev.service_token_id = client_id;
            ev.service_token_name = name.map(str::to_string);
            return Ok(refuse(&state, ev, started, reason).await);
        }
        TokenCheck::Valid { client_id, name } => {
            ev.connection_method = ConnectionMethod::ServiceToken;
            ev.service_token_id = Some(client_id);
            ev.service_token_name = Some(name.to_string());
            Identity::Token { name }
        }
        TokenCheck::Absent => match &conn.cert {
            Some(cert) => {
                ev.connection_method = ConnectionMethod::Mtls;
                fill_cert(&mut ev, &cert.identity);
                if snapshot
                    .revoked_cert_fingerprints
                    .contains(cert.identity.fingerprint_sha256.as_str())
                {
                    return Ok(refuse(&state, ev, started, DenyReason::CertRevoked).await);
                }
                Identity::Cert(&cert.identity)
            }
            None => Identity::None,
        },
    };
    // Certificate fields are recorded even when a token decided, so audits show both.
    if let (Some(cert), ConnectionMethod::ServiceToken) = (&conn.cert, ev.connection_method) {
        fill_cert(&mut ev, &cert.identity);
    }

    let decision = policy::evaluate(
        app,
        &policy::Request {
            identity,
            ip: client_ip,
            country: ev.country.as_deref(),
        },
    );
    ev.policy_name = decision.policy_name().map(str::to_string);
    match decision.verdict {
        Verdict::Block => return Ok(refuse(&state, ev, started, DenyReason::BlockedByPolicy).await),
        Verdict::NoMatch if matches!(identity, Identity::None) => {
            return Ok(refuse(&state, ev, started, DenyReason::MissingCredentials).await);
        }
        Verdict::NoMatch => {
            return Ok(refuse(&state, ev, started, DenyReason::NoPolicyMatched).await);
        }
        Verdict::Allow | Verdict::Bypass => {}
    }
    if state.audit_failure == AuditFailure::FailClosed && !state.audit.is_available() {
        GateMetrics::inc(&state.metrics.audit_refusals);
        return Ok(refuse(&state, ev, started, DenyReason::AuditUnavailable).await);
    }

    let identity_header = match identity {
        Identity::Token { name } => Some(("token:", name)),
        Identity::Cert(c) => c.common_name.as_deref().map(|cn| ("cert:", cn)),
        Identity::None => None,
    };
    let ray = header_value(&ev.ray_id);
    let who = ForwardIdentity {
        identity: identity_header,
        connection: ev.connection_method.as_str(),
        token_id: ev.service_token_id.as_deref(),
        cert_sha256: conn
            .cert
            .as_ref()
            .map(|c| c.identity.fingerprint_sha256.as_str()),
        cert_subject: conn.cert.as_ref().map(|c| c.subject.as_str()),
        ray_id: &ray,
        client_ip,
        tls: conn.tls,
    };
    // HTTP/2 streams run on tasks of their own: they use the pool, not the connection's task.
    let sticky = req.version() < hyper::Version::HTTP_2;
    let upstream_req = forward::prepare(req, &who);
    let bypass = decision.verdict == Verdict::Bypass;
    let sent = send_upstream(
        &state.client,
        sticky.then_some(&downstream.upstream),
        &app.upstream,
        upstream_req,
    );
    match tokio::time::timeout(state.upstream_timeout, sent).await {
        Ok(Ok(resp)) => {
            ev.allowed = true;
            ev.decision = if bypass { "bypass" } else { "allow" }.to_string();
            ev.status = Some(resp.status().as_u16());
            GateMetrics::inc(if bypass {
                &state.metrics.bypassed
            } else {
                &state.metrics.allowed
            });
            let mut resp = forward::response(resp);
            resp.headers_mut().insert("x-botgate-ray-id", ray.clone());
            if record(&state, ev, started).await.is_err() {
                GateMetrics::inc(&state.metrics.audit_refusals);
                return Ok(refusal(DenyReason::AuditUnavailable, ray));
            }
            Ok(resp)
        }
        Ok(Err(e)) => {
            if let UpstreamError::Uri(_) = e {
                tracing::error!(app = %app.name, error = %e, "cannot build the upstream request");
            } else {
                tracing::warn!(app = %app.name, upstream = %app.upstream, error = %e, "upstream request failed");
                GateMetrics::inc(&state.metrics.upstream_errors);
            }
            Ok(refuse(&state, ev, started, DenyReason::UpstreamUnreachable).await)
        }
        Err(_) => {
            tracing::warn!(app = %app.name, upstream = %app.upstream, "upstream timed out");
            GateMetrics::inc(&state.metrics.upstream_errors);
            Ok(refuse(&state, ev, started, DenyReason::UpstreamUnreachable).await)
        }
    }
}

/// Why the upstream did not answer.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error(transparent)]
    Pool(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    Sticky(#[from] hyper::Error),
    #[error("{0}")]
    Uri(String),
}

/// Send on the connection's sticky upstream connection when given and it takes the request,
/// else through the pool.
async fn send_upstream(
    pool: &UpstreamClient,
    sticky: Option<&StickyUpstream>,
    upstream: &str,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, UpstreamError> {
    if let Some(sticky) = sticky {
        match sticky.send(upstream, req).await {
            Ok(answer) => return Ok(answer?),
            Err(NotTaken(back)) => req = back,
        }
    }
    *req.uri_mut() = forward::upstream_uri(upstream, &req).map_err(UpstreamError::Uri)?;
    Ok(pool.request(req).await?)
}

pub(super) fn fill_cert(ev: &mut AccessEvent, c: &CertIdentity) {
    ev.cert_common_name = c.common_name.clone();
    ev.cert_serial = Some(c.serial.clone());
    ev.cert_fingerprint_sha256 = Some(c.fingerprint_sha256.clone());
    ev.cert_issuer = Some(c.issuer.clone());
}

/// Record a refusal and answer it with a short JSON body (503 instead when failing closed and
/// its event could not be written).
async fn refuse(
    state: &GateState,
    mut ev: AccessEvent,
    started: Instant,
    reason: DenyReason,
) -> Response<ProxyBody> {
    let status = reason.status();
    ev.allowed = false;
    ev.decision = if status >= 500 { "error" } else { "deny" }.to_string();
    ev.status = Some(status);
    ev.deny_reason = Some(reason.as_str().to_string());
    if status < 500 {
        GateMetrics::inc(&state.metrics.denied);
    }
    let ray = header_value(&ev.ray_id);
    if record(state, ev, started).await.is_err() && reason != DenyReason::AuditUnavailable {
        GateMetrics::inc(&state.metrics.audit_refusals);
        return refusal(DenyReason::AuditUnavailable, ray);
    }
    refusal(reason, ray)
}

/// The refusal response for `reason`: status, JSON body with the ray id, headers.
fn refusal(reason: DenyReason, ray: HeaderValue) -> Response<ProxyBody> {
    let status = reason.status();
    let body = serde_json::to_vec(&RefusalBody {
        error: reason.public_message(),
        status,
        ray_id: ray.to_str().unwrap_or("-"),
    })
    .unwrap_or_default();
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-botgate-ray-id", ray);
    if status == 401 {
        h.insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("CF-Access-Client-Id"),
        );
    }
    resp
}

/// The short JSON body of a refusal (contract: an error, the status and the ray id).
#[derive(serde::Serialize)]
struct RefusalBody<'a> {
    error: &'a str,
    status: u16,
    ray_id: &'a str,
}

/// Record the request's event and wait until the batch holding it is in the audit log (group
/// commit: a response never leaves before its record). `Err`: it could not be written and the
/// gate fails closed, so the caller answers 503 instead.
async fn record(
    state: &GateState,
    mut ev: AccessEvent,
    started: Instant,
) -> Result<(), AuditUnavailable> {
    ev.latency_ms = Some((started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0);
    let written = match state.audit.commit(ev) {
        Ok(commit) => commit.await,
        Err(e) => Err(e),
    };
    match state.audit_failure {
        AuditFailure::FailClosed => written,
        AuditFailure::FailOpen => Ok(()),
    }
}

/// The address as a string in one allocation (`to_string` grows its buffer).
fn ip_string(ip: IpAddr) -> String {
    use std::fmt::Write;
    // An IPv6 address is at most 45 characters.
    let mut s = String::with_capacity(45);
    let _ = write!(s, "{ip}");
    s
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("-"))
}

/// The TCP peer, or — only when the peer is a trusted proxy — the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy. Untrusted peers' headers are ignored.
fn client_ip(state: &GateState, peer: IpAddr, headers: &hyper::HeaderMap) -> IpAddr {
    let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let trusted = |ip: &IpAddr| state.trusted_proxies.iter().any(|n| n.contains(ip));
    match xff {
        Some(list) if trusted(&peer) => list
            .rsplit(',')
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
        Some(_) => {
            GateMetrics::inc(&state.metrics.spoofed_forwarded_for);
            peer
        }
        None => peer,
    }
}
