//! Forwarding to the upstream: a pooled hyper client, streaming bodies both ways, and header
//! hygiene (hop-by-hop headers and the client secret removed, spoofed identity headers dropped,
//! identity headers added, forwarding headers believed only from trusted proxies).

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::identify::CLIENT_SECRET_HEADER;

/// Response body type of the admin endpoints.
pub type GateBody = BoxBody<Bytes, hyper::Error>;

/// Response body of the gate: the upstream's body streamed through, or a short refusal (no
/// boxing per response).
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The pooled client for `http://` upstreams (`https://` ones use their TLS profile's pool).
pub type UpstreamClient = Client<HttpConnector, Incoming>;

/// Build the `http://` upstream client: the keep-alive pool settings and TCP connector every
/// upstream pool has (`upstream_tls`), without TLS.
pub fn upstream_client() -> UpstreamClient {
    crate::upstream_tls::pool_builder().build(crate::upstream_tls::tcp_connector())
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

/// Headers that say who the client is or how it reached us. From a peer that is not a trusted
/// proxy they are lies or noise: removed, then `X-Forwarded-For`, `X-Real-IP` and
/// `Cf-Connecting-Ip` are set to the client IP the gate decided on.
pub const FORWARDING_HEADERS: [&str; 5] = [
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "cf-connecting-ip",
    "x-forwarded-host",
];

/// The client-certificate headers (the hosted product's names). Set only for apps with
/// `forward_client_cert = true`; a client's own copies are always removed.
pub const CLIENT_CERT_HEADERS: [&str; 2] = ["cf-client-cert-sha256", "cf-client-cert-der-base64"];

/// What the upstream learns about the caller.
#[derive(Debug)]
pub struct ForwardIdentity<'a> {
    /// `token:NAME` or `cert:CN`, built into the header value directly.
    pub identity: Option<(&'static str, &'a str)>,
    pub connection: &'static str,
    pub token_id: Option<&'a str>,
    pub cert_sha256: Option<&'a str>,
    pub cert_subject: Option<&'a str>,
    /// `forward_client_cert`: the certificate's SHA-256 (hex) and its DER in base64.
    pub client_cert: Option<(&'a str, &'a str)>,
    pub ray_id: &'a HeaderValue,
    pub client_ip: IpAddr,
    /// The TCP peer when it is a trusted proxy (its forwarding headers are kept and
    /// `X-Forwarded-For` gets the peer appended); `None` for any other peer.
    pub via_proxy: Option<IpAddr>,
    pub tls: bool,
    /// The signed origin assertion (`Cf-Access-Jwt-Assertion`); a client's own is always removed.
    pub assertion: Option<HeaderValue>,
    /// The request's `Authorization` carried the OIDC workload token that identified it: it is
    /// a secret while valid, so it is removed (`cf-access-token` always is).
    pub strip_authorization: bool,
}

/// Clean `req`'s headers for the upstream and add the identity headers. The URI is left as the
/// client sent it: `upstream_uri` (pool) or the sticky connection (origin form) set it.
pub fn prepare(mut req: Request<Incoming>, who: &ForwardIdentity<'_>) -> Request<Incoming> {
    *req.version_mut() = hyper::Version::HTTP_11;
    clean_headers(req.headers_mut());
    let h = req.headers_mut();
    h.remove(CLIENT_SECRET_HEADER);
    h.remove(crate::oidc::TOKEN_HEADER);
    if who.strip_authorization {
        h.remove(hyper::header::AUTHORIZATION);
    }
    for name in CLIENT_CERT_HEADERS {
        h.remove(name);
    }
    h.remove(crate::assertion::HEADER);
    if let Some(a) = &who.assertion {
        h.insert(HeaderName::from_static(crate::assertion::HEADER), a.clone());
    }
    set_forwarding(h, who.client_ip, who.via_proxy);
    if let Some((kind, name)) = who.identity {
        let mut v = Vec::with_capacity(kind.len() + name.len());
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(name.as_bytes());
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(v)) {
            h.insert(HeaderName::from_static("x-botgate-identity"), v);
        }
    }
    h.insert(
        HeaderName::from_static("x-botgate-connection"),
        HeaderValue::from_static(who.connection),
    );
    h.insert(
        HeaderName::from_static("x-botgate-ray-id"),
        who.ray_id.clone(),
    );
    let set = |h: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    if let Some(t) = who.token_id {
        // The client's own id header, shared rather than copied, when it is exactly the id.
        match h.get(super::identify::CLIENT_ID_HEADER) {
            Some(v) if v.as_bytes() == t.as_bytes() => {
                let v = v.clone();
                h.insert(HeaderName::from_static("x-botgate-token-id"), v);
            }
            _ => set(h, "x-botgate-token-id", t),
        }
    }
    if let Some(c) = who.cert_sha256 {
        set(h, "x-botgate-cert-sha256", c);
    }
    if let Some(s) = who.cert_subject {
        set(h, "x-botgate-cert-subject", s);
    }
    if let Some((sha256, der)) = who.client_cert {
        set(h, CLIENT_CERT_HEADERS[0], sha256);
        set(h, CLIENT_CERT_HEADERS[1], der);
    }
    h.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if who.tls { "https" } else { "http" }),
    );
    req
}

/// The forwarding headers for the upstream. From a trusted proxy: its `X-Forwarded-For` chain
/// (all its headers, joined) with the proxy appended, as every hop does; its other forwarding
/// headers kept. From anyone else: all of `FORWARDING_HEADERS` removed and `X-Forwarded-For`
/// set to the client. Either way `X-Real-IP` and `Cf-Connecting-Ip` are the client IP.
fn set_forwarding(h: &mut HeaderMap, client_ip: IpAddr, via_proxy: Option<IpAddr>) {
    // One allocation holds the client's address for all three headers that carry it.
    let client = Bytes::copy_from_slice(IpText::new(client_ip).as_bytes());
    let xff = match via_proxy {
        Some(proxy) => {
            let hop = IpText::new(proxy);
            let prev: Vec<&[u8]> = h
                .get_all("x-forwarded-for")
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            let mut v = Vec::with_capacity(
                prev.iter().map(|p| p.len() + 2).sum::<usize>() + hop.as_bytes().len(),
            );
            for p in prev {
                v.extend_from_slice(p);
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(hop.as_bytes());
            Bytes::from(v)
        }
        None => {
            for name in FORWARDING_HEADERS {
                h.remove(name);
            }
            client.clone()
        }
    };
    // Bytes of an IP address and of received header values: always a valid header value.
    if let Ok(v) = HeaderValue::from_maybe_shared(xff) {
        h.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(client) {
        h.insert(HeaderName::from_static("cf-connecting-ip"), v.clone());
        h.insert(HeaderName::from_static("x-real-ip"), v);
    }
}

/// An IP address written on the stack (at most 45 characters), so headers copy it once.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        use std::io::Write;
        let mut cur = std::io::Cursor::new([0u8; 48]);
        // Cannot fail: the longest IPv6 text is 45 bytes.
        let _ = write!(cur, "{ip}");
        let len = cur.position() as usize;
        Self {
            buf: cur.into_inner(),
            len,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The absolute URI of `req` at `upstream` (`http(s)://host:port[/base]`), for the pooled client.
pub fn upstream_uri(upstream: &str, req: &Request<Incoming>) -> Result<Uri, String> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let base = upstream.trim_end_matches('/');
    format!("{base}{pq}")
        .parse()
        .map_err(|e| format!("bad upstream URI {base}{pq}: {e}"))
}

/// Remove hop-by-hop headers (and any named in `Connection`) and spoofed identity headers.
pub fn clean_headers(h: &mut HeaderMap) {
    let connection_tokens = || {
        h.get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
    };
    // Usually `keep-alive` or `close`: nothing beyond the fixed list, nothing to collect.
    let covered = |n: &str| {
        n.eq_ignore_ascii_case("close") || HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h))
    };
    if !connection_tokens().all(covered) {
        let named: Vec<HeaderName> = connection_tokens()
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
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

/// Clean the upstream's response for the client (its body streamed, not buffered).
pub fn response(resp: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    clean_headers(&mut parts.headers);
    Response::from_parts(parts, Either::Left(body))
}
