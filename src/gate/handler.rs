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
use super::identify::{self, TokenCheck, WorkloadToken, check_token};
use super::metrics::GateMetrics;
use super::request_head;
use super::snapshot::CredentialSnapshot;
use super::upstream::{NotTaken, StickyError, StickyUpstream};
use crate::audit::event::new_ray_id;
use crate::audit::{AccessEvent, AuditSink, AuditUnavailable, ConnectionMethod, EventKind};
use crate::clock::SharedClock;
use crate::config::AuditFailure;
use crate::pki::CertInfo;
use crate::policy::{self, CertIdentity, Identity, PolicySet, Verdict};
use crate::upstream_tls::UpstreamTls;

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
    /// Signs and caches the origin assertion.
    pub assertions: super::assertion::Assertions,
    /// Rate-limit buckets per credential (`token --rate`, a policy's `rate_limit`).
    pub limits: super::limits::RateLimits,
    /// `[[oidc_issuer]]`s and their key sets.
    pub oidc: Arc<crate::oidc::Issuers>,
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// A client certificate that passed chain verification.
    pub cert: Option<Arc<PeerCert>>,
    /// A client certificate `pki::verify` refused: its requests get 401 (never an identity).
    pub cert_refused: Option<Arc<super::client_auth::RefusedCert>>,
}

/// One downstream connection: its facts and its sticky upstream connection.
#[derive(Debug)]
pub struct Downstream {
    pub info: ConnInfo,
    pub upstream: StickyUpstream,
}

/// A verified client certificate, parsed once when the handshake delivers it.
#[derive(Debug, Clone)]
pub struct PeerCert {
    /// What policies match (CN, issuer, SANs, SPIFFE ID, SPKI pin …).
    pub identity: CertIdentity,
    /// The whole certificate (subject, validity, key type, DER) for audit events, the inventory
    /// of seen certificates and `forward_client_cert`.
    pub info: Arc<CertInfo>,
    /// The DER in base64, encoded on first use (once per connection, not per request).
    der_base64: std::sync::OnceLock<String>,
    /// The audit event's `cert_san` and `spiffe_id`, formatted once per connection.
    audit_san: Option<Vec<String>>,
    audit_spiffe_id: Option<String>,
    /// The SHA-256 fingerprint, shared: the rate limiter's bucket key for this certificate.
    fingerprint: Arc<str>,
}

impl PeerCert {
    /// Parse a DER leaf certificate; `None` when it is not one.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let info = CertInfo::from_der("client certificate", der).ok()?;
        let identity = CertIdentity {
            common_name: info.common_name.clone(),
            issuer: info
                .issuer_common_name
                .clone()
                .unwrap_or_else(|| info.issuer.clone()),
            organization: info.organization.clone(),
            country: info.country.clone(),
            serial: info.serial_hex.clone(),
            fingerprint_sha256: info.fingerprint_sha256.clone(),
            san: info.san.clone(),
            spiffe_id: info.spiffe_id.clone(),
            spki_sha256: info.spki_sha256.clone(),
        };
        Some(Self {
            fingerprint: identity.fingerprint_sha256.as_str().into(),
            audit_san: (!identity.san.is_empty()).then(|| identity.san.labelled()),
            audit_spiffe_id: identity.spiffe_id.as_ref().map(|id| id.to_string()),
            identity,
            info: Arc::new(info),
            der_base64: Default::default(),
        })
    }

    /// The certificate's DER in standard base64 (`Cf-Client-Cert-Der-Base64`).
    pub fn der_base64(&self) -> &str {
        self.der_base64
            .get_or_init(|| crate::pki::inspect::base64(&self.info.der))
    }
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
    let (client_ip, via_proxy) = client_ip(&state, conn.peer.ip(), req.headers());

    let mut ev = AccessEvent::empty(EventKind::Access, now, new_ray_id());
    ev.ip_address = Some(ip_string(client_ip));
    ev.country = state.geo.as_ref().and_then(|g| g.country(client_ip));
    ev.user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .map(request_head::audit_text);
    ev.method = Some(req.method().as_str().to_string());
    ev.path = Some(req.uri().path().to_string());
    GateMetrics::inc(&state.metrics.requests);
    let host = match request_head::request_host(&req) {
        Ok(host) => host,
        Err(problem) => {
            return Ok(refuse_malformed(&state, ev, started, problem.as_str()).await);
        }
    };
    ev.host = Some(policy::strip_port(host).to_string());
    if req.uri().path().starts_with("/cdn-cgi/access/")
        && let Some(answer) = access_endpoint(&state, &mut ev, &req, now)
    {
        return Ok(finish_endpoint(&state, ev, started, answer).await);
    }

    let policies = state.policies.load();
    let Some(app) = policies.app_for_host(host) else {
        return Ok(refuse(&state, ev, started, DenyReason::UnknownHost).await);
    };
    ev.app_name = Some(app.name.clone());

    let snapshot = state.snapshot.load();
    // An OIDC workload token is verified first (it may wait for its issuer's key set).
    let workload = identify::workload_token(req.headers(), !state.oidc.is_empty());
    let mut verified: Option<Arc<crate::credential::oidc::OidcIdentity>> = None;
    if let WorkloadToken::Refused(reason) = workload {
        ev.connection_method = ConnectionMethod::Oidc;
        return Ok(refuse(&state, ev, started, reason).await);
    }
    if let Some(jwt) = workload.jwt() {
        ev.connection_method = ConnectionMethod::Oidc;
        match state.oidc.verify(jwt, now).await {
            Ok(id) => {
                ev.oidc_identity = Some(id.label.to_string());
                ev.oidc_claims = Some(id.audit_claims.clone());
                verified = Some(id);
            }
            Err((issuer, e)) => {
                let mut details = serde_json::json!({ "oidc_error": e.to_string() });
                if let Some(i) = issuer {
                    details["oidc_issuer"] = serde_json::json!(&*i.settings.name);
                }
                ev.details = Some(details);
                return Ok(refuse(&state, ev, started, (&e).into()).await);
            }
        }
    }
    // The token's own rate limit, and the key of its bucket (the snapshot's shared Client ID).
    let mut token_rate: Option<(Option<crate::bounds::RateLimit>, std::sync::Arc<str>)> = None;
    let identity = if let Some(id) = &verified {
        Identity::Oidc(id)
    } else {
        match check_token(req.headers(), &snapshot, now) {
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
            TokenCheck::Valid {
                client_id,
                entry,
                secret_version,
            } => {
                ev.connection_method = ConnectionMethod::ServiceToken;
                ev.service_token_id = Some(client_id.to_string());
                ev.service_token_name = Some(entry.name.to_string());
                ev.secret_version = Some(secret_version);
                // The token's own bounds travel with it: checked before any policy.
                if let Some(r) = entry.ip_refusal(client_ip) {
                    return Ok(refuse(&state, ev, started, r).await);
                }
                token_rate = Some((entry.bounds.rate_limit, client_id.clone()));
                Identity::Token { name: &entry.name }
            }
            TokenCheck::Absent => match (&conn.cert, &conn.cert_refused) {
                (Some(cert), _) => {
                    ev.connection_method = ConnectionMethod::Mtls;
                    fill_cert(&mut ev, cert);
                    // Revoked since the handshake (a kept-alive connection): the same check.
                    if let Some(r) = snapshot
                        .revoked_certs
                        .refusal(&cert.identity.fingerprint_sha256)
                    {
                        ev.details = Some(serde_json::json!({ "cert_refused": r.detail }));
                        return Ok(refuse(&state, ev, started, DenyReason::CertRevoked).await);
                    }
                    Identity::Cert(&cert.identity)
                }
                (None, Some(refused)) => {
                    ev.connection_method = ConnectionMethod::Mtls;
                    if let Some(c) = &refused.cert {
                        fill_cert(&mut ev, c);
                    }
                    ev.details = Some(serde_json::json!({ "cert_refused": refused.detail }));
                    return Ok(refuse(&state, ev, started, refused.reason).await);
                }
                (None, None) => Identity::None,
            },
        }
    };
    // Certificate fields are recorded even when a token or workload decided, so audits show both.
    if let (Some(cert), ConnectionMethod::ServiceToken | ConnectionMethod::Oidc) =
        (&conn.cert, ev.connection_method)
    {
        fill_cert(&mut ev, cert);
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
    if let Some(r) = decision.refusal(&identity) {
        return Ok(refuse(&state, ev, started, r.into()).await);
    }
    let (own_rate, token_key) = token_rate.unzip();
    let rate = check_rates(
        &state,
        &mut ev,
        own_rate.flatten(),
        decision.policy.and_then(|p| p.rate_limit.as_ref()),
        || {
            use super::limits::LimitKey;
            match (identity, token_key, &conn.cert) {
                (Identity::Token { .. }, Some(id), _) => LimitKey::Token(id),
                (Identity::Cert(_), _, Some(cert)) => LimitKey::Cert(cert.fingerprint.clone()),
                (Identity::Oidc(id), _, _) => LimitKey::Workload(id.label.clone()),
                _ => LimitKey::Address(client_ip),
            }
        },
    );
    if let Some(outcome) = rate.filter(|o| o.limited) {
        let mut resp = refuse(&state, ev, started, DenyReason::RateLimited).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            outcome.apply_headers(resp.headers_mut());
        }
        return Ok(resp);
    }
    if state.audit_failure == AuditFailure::FailClosed && !state.audit.is_available() {
        return Ok(refuse(&state, ev, started, DenyReason::AuditUnavailable).await);
    }

    let identity_header = match identity {
        Identity::Token { name } => Some(("token:", name)),
        Identity::Cert(c) => c.common_name.as_deref().map(|cn| ("cert:", cn)),
        // The label is already `oidc:<issuer>/<sub>`.
        Identity::Oidc(id) => Some(("", &*id.label)),
        Identity::None => None,
    };
    let ray = header_value(&ev.ray_id);
    let assertion = if app.assertion {
        let subject = match identity {
            Identity::Token { .. } => super::assertion::Subject::Token {
                client_id: ev.service_token_id.as_deref().unwrap_or_default(),
            },
            Identity::Cert(c) => super::assertion::Subject::Cert {
                common_name: c.common_name.as_deref(),
                fingerprint_sha256: &c.fingerprint_sha256,
                spiffe_id: conn
                    .cert
                    .as_ref()
                    .and_then(|p| p.audit_spiffe_id.as_deref()),
            },
            Identity::Oidc(id) => super::assertion::Subject::Workload {
                identity: &id.label,
            },
            Identity::None => super::assertion::Subject::None,
        };
        state
            .assertions
            .header(&snapshot.keys, app, &subject, decision.policy_name(), now)
    } else {
        None
    };
    let who = ForwardIdentity {
        identity: identity_header,
        connection: ev.connection_method.as_str(),
        token_id: ev.service_token_id.as_deref(),
        cert_sha256: conn
            .cert
            .as_ref()
            .map(|c| c.identity.fingerprint_sha256.as_str()),
        cert_subject: conn.cert.as_ref().map(|c| c.info.subject.as_str()),
        client_cert: conn
            .cert
            .as_ref()
            .filter(|_| app.forward_client_cert)
            .map(|c| (c.identity.fingerprint_sha256.as_str(), c.der_base64())),
        ray_id: &ray,
        client_ip,
        via_proxy: via_proxy.then_some(conn.peer.ip()),
        tls: conn.tls,
        assertion,
        strip_authorization: matches!(workload, WorkloadToken::Bearer(_)),
    };
    // HTTP/2 streams run on tasks of their own: they use the pool, not the connection's task.
    let sticky = req.version() < hyper::Version::HTTP_2;
    let upstream_req = forward::prepare(req, &who);
    let bypass = decision.verdict == Verdict::Bypass;
    let sent = send_upstream(
        &state.client,
        sticky.then_some(&downstream.upstream),
        &app.upstream,
        app.upstream_tls.as_ref(),
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
            if let Some(outcome) = &rate {
                outcome.apply_headers(resp.headers_mut());
            }
            if record(&state, ev, started).await.is_err() {
                GateMetrics::inc(&state.metrics.audit_refusals);
                return Ok(refusal(DenyReason::AuditUnavailable, ray, None));
            }
            Ok(resp)
        }
        Ok(Err(e)) if e.is_client_body() => {
            tracing::debug!(app = %app.name, error = %e, "the request body could not be read");
            let problem = "the request body does not decode (chunked encoding or length)";
            Ok(refuse_malformed(&state, ev, started, problem).await)
        }
        Ok(Err(e)) => {
            if let UpstreamError::Uri(_) = e {
                tracing::error!(app = %app.name, error = %e, "cannot build the upstream request");
            } else {
                tracing::warn!(app = %app.name, upstream = %app.upstream, error = %e, "upstream request failed");
                GateMetrics::inc(&state.metrics.upstream_errors);
            }
            let reason = match e.tls_failure() {
                Some(cause) => {
                    ev.details =
                        Some(serde_json::json!({ "upstream_tls_error": cause.to_string() }));
                    DenyReason::UpstreamTlsError
                }
                None => DenyReason::UpstreamUnreachable,
            };
            Ok(refuse(&state, ev, started, reason).await)
        }
        Err(_) => {
            tracing::warn!(app = %app.name, upstream = %app.upstream, "upstream timed out");
            GateMetrics::inc(&state.metrics.upstream_errors);
            Ok(refuse(&state, ev, started, DenyReason::UpstreamUnreachable).await)
        }
    }
}

/// Take this request from its rate-limit buckets: the token's own `--rate` and the deciding
/// policy's `rate_limit`. Returns the enforced outcome the client must heed (for the 429 or
/// the `RateLimit-*` headers), with `details.rate_limit` on `ev` when it refuses. A policy in
/// shadow mode never refuses and adds no headers: over its limit, `ev` gets
/// `details.rate_limited_shadow = true` and the request goes on.
fn check_rates(
    state: &GateState,
    ev: &mut AccessEvent,
    token_rate: Option<crate::bounds::RateLimit>,
    policy: Option<&policy::PolicyRateLimit>,
    key: impl FnOnce() -> super::limits::LimitKey,
) -> Option<super::limits::Outcome> {
    use super::limits::Scope;
    use crate::bounds::RateLimitMode;
    if token_rate.is_none() && policy.is_none() {
        return None;
    }
    // The credential's bucket key: shared from the snapshot or the connection, never copied.
    let key = key();
    let gates = state.limits.gates_alive();
    let mut enforced: Option<(
        super::limits::Outcome,
        &'static str,
        crate::bounds::RateLimit,
    )> = None;
    if let Some(rate) = token_rate {
        let o = state.limits.check(&Scope::Token, &rate, &key);
        enforced = Some((o, "token", rate));
    }
    if let Some(p) = policy {
        let o = state
            .limits
            .check(&Scope::Policy(p.scope.clone()), &p.limit, &key);
        match p.mode {
            RateLimitMode::Shadow => {
                if o.limited {
                    ev.details = Some(serde_json::json!({
                        "rate_limited_shadow": true,
                        "rate_limit": o.details("policy", &p.limit, gates),
                    }));
                }
            }
            RateLimitMode::Enforce => {
                enforced = Some(match enforced {
                    Some((prev, scope, rate)) if prev.stricter(o) == prev => (prev, scope, rate),
                    _ => (o, "policy", p.limit),
                });
            }
        }
    }
    let (outcome, scope, rate) = enforced?;
    if outcome.limited {
        ev.details =
            Some(serde_json::json!({ "rate_limit": outcome.details(scope, &rate, gates) }));
    }
    Some(outcome)
}

/// Why the upstream did not answer.
#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error(transparent)]
    Pool(#[from] hyper_util::client::legacy::Error),
    #[error(transparent)]
    Sticky(#[from] hyper::Error),
    /// The sticky connection's TLS handshake with an `https://` upstream failed.
    #[error("TLS handshake with the upstream: {0}")]
    Handshake(std::io::Error),
    #[error("{0}")]
    Uri(String),
}

impl From<StickyError> for UpstreamError {
    fn from(e: StickyError) -> Self {
        match e {
            StickyError::Http(e) => UpstreamError::Sticky(e),
            StickyError::Handshake(e) => UpstreamError::Handshake(e),
        }
    }
}

impl UpstreamError {
    /// Whether the request failed because the client's own body did not decode (bad chunked
    /// framing, cut short): the client's 400, not the upstream's 502. The only body the gate
    /// sends upstream is the client's, so hyper's "error from the user's body" means that one.
    fn is_client_body(&self) -> bool {
        // Not `self` as the start: `#[error(transparent)]` skips the wrapped error's own level.
        let mut cur = self.inner();
        while let Some(e) = cur {
            if let Some(h) = e.downcast_ref::<hyper::Error>()
                && h.is_user()
                && std::error::Error::source(h).is_some_and(|s| s.is::<hyper::Error>())
            {
                return true;
            }
            cur = e.source();
        }
        false
    }

    /// The TLS error with an `https://` upstream (its certificate, its name, its alert) that
    /// made the request fail, if one did: the `upstream_tls_error` refusal and its cause.
    fn tls_failure(&self) -> Option<&rustls::Error> {
        self.inner().and_then(crate::upstream_tls::tls_failure)
    }

    /// The wrapped error. Not `self`: `#[error(transparent)]` skips the wrapped error's own
    /// level in `source()`.
    fn inner(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Pool(e) => Some(e),
            UpstreamError::Sticky(e) => Some(e),
            UpstreamError::Handshake(e) => Some(e),
            UpstreamError::Uri(_) => None,
        }
    }
}

/// Send on the connection's sticky upstream connection when given and it takes the request,
/// else through the pool: `pool` for `http://` upstreams, the TLS profile's own for `https://`.
async fn send_upstream(
    pool: &UpstreamClient,
    sticky: Option<&StickyUpstream>,
    upstream: &str,
    tls: Option<&Arc<UpstreamTls>>,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, UpstreamError> {
    if let Some(sticky) = sticky {
        match sticky.send(upstream, tls, req).await {
            Ok(answer) => return Ok(answer?),
            Err(NotTaken(back)) => req = back,
        }
    }
    *req.uri_mut() = forward::upstream_uri(upstream, &req).map_err(UpstreamError::Uri)?;
    Ok(match tls {
        Some(profile) => profile.pool().request(req).await?,
        None => pool.request(req).await?,
    })
}

/// What a `/cdn-cgi/access/` endpoint answers: status and JSON body.
struct EndpointAnswer {
    status: StatusCode,
    body: Bytes,
    /// The key set may be cached by verifiers (as the hosted product allows).
    cacheable: bool,
}

/// The key set and get-identity, on every host; `None` for any other path under the prefix
/// (it goes to the app like any request).
fn access_endpoint(
    state: &GateState,
    ev: &mut AccessEvent,
    req: &Request<Incoming>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<EndpointAnswer> {
    use crate::assertion::{CERTS_PATH, IDENTITY_PATH};
    let path = req.uri().path();
    if req.method() != hyper::Method::GET || (path != CERTS_PATH && path != IDENTITY_PATH) {
        return None;
    }
    let keys = state.snapshot.load().keys.clone();
    let endpoint = if path == CERTS_PATH {
        "key_set"
    } else {
        "get_identity"
    };
    ev.details = Some(serde_json::json!({ "endpoint": endpoint }));
    if path == CERTS_PATH {
        return Some(EndpointAnswer {
            status: StatusCode::OK,
            body: super::assertion::key_set_body(&keys, now),
            cacheable: true,
        });
    }
    let (status, body) = match super::assertion::identity(req.headers(), &keys, now) {
        Ok(claims) => (StatusCode::OK, serde_json::to_vec(&claims)),
        Err(why) => (
            StatusCode::UNAUTHORIZED,
            serde_json::to_vec(
                &serde_json::json!({ "error": why, "status": 401, "ray_id": ev.ray_id }),
            ),
        ),
    };
    Some(EndpointAnswer {
        status,
        body: Bytes::from(body.unwrap_or_default()),
        cacheable: false,
    })
}

/// Record an endpoint's answer (one event per request, as for every request) and send it.
async fn finish_endpoint(
    state: &GateState,
    mut ev: AccessEvent,
    started: Instant,
    answer: EndpointAnswer,
) -> Response<ProxyBody> {
    if answer.status == StatusCode::OK {
        ev.allowed = true;
        ev.decision = "allow".into();
        ev.status = Some(200);
    } else {
        deny(state, &mut ev, DenyReason::AssertionInvalid);
    }
    let ray = header_value(&ev.ray_id);
    if record(state, ev, started).await.is_err() {
        return refusal(DenyReason::AuditUnavailable, ray, None);
    }
    let mut resp = Response::new(Either::Right(Full::new(answer.body)));
    *resp.status_mut() = answer.status;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if answer.cacheable {
        h.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
    }
    h.insert("x-botgate-ray-id", ray);
    resp
}

pub(super) fn fill_cert(ev: &mut AccessEvent, cert: &PeerCert) {
    let c = &cert.identity;
    ev.cert_common_name = c.common_name.clone();
    ev.cert_serial = Some(c.serial.clone());
    ev.cert_fingerprint_sha256 = Some(c.fingerprint_sha256.clone());
    ev.cert_issuer = Some(c.issuer.clone());
    ev.cert_san = cert.audit_san.clone();
    ev.spiffe_id = cert.audit_spiffe_id.clone();
    ev.peer_cert = Some(cert.info.clone());
}

/// Mark `ev` as refused for `reason` and count it (every refusal, whoever answers it).
pub(super) fn deny(state: &GateState, ev: &mut AccessEvent, reason: DenyReason) {
    let status = reason.status();
    ev.allowed = false;
    ev.decision = if status >= 500 { "error" } else { "deny" }.to_string();
    ev.status = Some(status);
    ev.deny_reason = Some(reason.as_str().to_string());
    if status < 500 {
        GateMetrics::inc(&state.metrics.denied);
    }
    if reason == DenyReason::AuditUnavailable {
        GateMetrics::inc(&state.metrics.audit_refusals);
    }
}

/// Refuse a malformed request with 400, telling the client (and the audit) what is wrong.
async fn refuse_malformed(
    state: &GateState,
    mut ev: AccessEvent,
    started: Instant,
    problem: &'static str,
) -> Response<ProxyBody> {
    ev.details = Some(serde_json::json!({ "malformed": problem }));
    refuse_with(
        state,
        ev,
        started,
        DenyReason::MalformedRequest,
        Some(problem),
    )
    .await
}

/// Record a refusal and answer it with a short JSON body.
async fn refuse(
    state: &GateState,
    ev: AccessEvent,
    started: Instant,
    reason: DenyReason,
) -> Response<ProxyBody> {
    refuse_with(state, ev, started, reason, None).await
}

/// Record a refusal (waiting for its batch, as every answer does) and answer it; 503 instead
/// when failing closed and its event could not be written.
async fn refuse_with(
    state: &GateState,
    mut ev: AccessEvent,
    started: Instant,
    reason: DenyReason,
    detail: Option<&'static str>,
) -> Response<ProxyBody> {
    deny(state, &mut ev, reason);
    let ray = header_value(&ev.ray_id);
    if record(state, ev, started).await.is_err() && reason != DenyReason::AuditUnavailable {
        GateMetrics::inc(&state.metrics.audit_refusals);
        return refusal(DenyReason::AuditUnavailable, ray, None);
    }
    refusal(reason, ray, detail)
}

/// The refusal response for `reason`: status, JSON body with the ray id, headers.
fn refusal(
    reason: DenyReason,
    ray: HeaderValue,
    detail: Option<&'static str>,
) -> Response<ProxyBody> {
    let status = reason.status();
    let body = serde_json::to_vec(&RefusalBody {
        error: reason.public_message(),
        detail,
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
    /// What exactly was wrong, when the client can fix it (malformed requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
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

/// The client IP, and whether the peer is a trusted proxy: the TCP peer, or — only when the
/// peer is a trusted proxy — the right-most address in `X-Forwarded-For` (all of its headers,
/// in order) that is not itself a trusted proxy. Untrusted peers' forwarding headers are
/// ignored (and counted); `forward::prepare` replaces them.
fn client_ip(state: &GateState, peer: IpAddr, headers: &hyper::HeaderMap) -> (IpAddr, bool) {
    let trusted = |ip: &IpAddr| state.trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        if forward::FORWARDING_HEADERS
            .iter()
            .any(|h| headers.contains_key(*h))
        {
            GateMetrics::inc(&state.metrics.spoofed_forwarded_for);
        }
        return (peer, false);
    }
    let xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|list| list.rsplit(','));
    let client = xff
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted(ip))
        .unwrap_or(peer);
    (client, true)
}
