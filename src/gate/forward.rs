//! Forwarding to the upstream: a pooled hyper client, streaming bodies both ways, and header
//! hygiene (hop-by-hop headers and the client secret removed, spoofed identity headers dropped,
//! identity headers added).

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::identify::CLIENT_SECRET_HEADER;

/// Response body type of the gate.
pub type GateBody = BoxBody<Bytes, hyper::Error>;

/// The pooled upstream client.
pub type UpstreamClient = Client<HttpConnector, Incoming>;

/// Build the upstream client (keep-alive pool, no TLS: upstreams are `http://`).
pub fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(http)
}

/// Headers that only concern one hop (RFC 9110 §7.6.1) and never go upstream.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Identity headers the gate sets; a client sending them is ignored.
pub const IDENTITY_PREFIX: &str = "x-botgate-";

/// What the upstream learns about the caller.
#[derive(Debug)]
pub struct ForwardIdentity<'a> {
    pub identity: Option<String>,
    pub connection: &'a str,
    pub token_id: Option<&'a str>,
    pub cert_sha256: Option<&'a str>,
    pub cert_subject: Option<&'a str>,
    pub ray_id: &'a str,
    pub client_ip: IpAddr,
    pub tls: bool,
}

/// Rewrite `req` for `upstream` (`http://host:port[/base]`) and clean its headers.
pub fn prepare(
    mut req: Request<Incoming>,
    upstream: &str,
    who: &ForwardIdentity<'_>,
) -> Result<Request<Incoming>, String> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let base = upstream.trim_end_matches('/');
    let uri: Uri = format!("{base}{pq}")
        .parse()
        .map_err(|e| format!("bad upstream URI {base}{pq}: {e}"))?;
    *req.uri_mut() = uri;
    *req.version_mut() = hyper::Version::HTTP_11;
    clean_headers(req.headers_mut());
    let h = req.headers_mut();
    h.remove(CLIENT_SECRET_HEADER);
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", who.client_ip),
        None => who.client_ip.to_string(),
    };
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    if let Some(id) = &who.identity {
        set("x-botgate-identity", id);
    }
    set("x-botgate-connection", who.connection);
    set("x-botgate-ray-id", who.ray_id);
    if let Some(t) = who.token_id {
        set("x-botgate-token-id", t);
    }
    if let Some(c) = who.cert_sha256 {
        set("x-botgate-cert-sha256", c);
    }
    if let Some(s) = who.cert_subject {
        set("x-botgate-cert-subject", s);
    }
    set("x-forwarded-proto", if who.tls { "https" } else { "http" });
    set("x-forwarded-for", &xff);
    Ok(req)
}

/// Remove hop-by-hop headers (and any named in `Connection`) and spoofed identity headers.
pub fn clean_headers(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    let spoofed: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for n in spoofed {
        h.remove(n);
    }
}

/// Clean the upstream's response for the client and box its body (streamed, not buffered).
pub fn response(resp: Response<Incoming>) -> Response<GateBody> {
    let (mut parts, body) = resp.into_parts();
    clean_headers(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}
