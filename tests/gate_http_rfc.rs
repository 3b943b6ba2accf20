//! HTTP by the RFC, end to end with raw TCP clients writing exact bytes: requests the HTTP
//! parser refuses are audited and counted, `Host` is checked (RFC 9112 §3.2), forwarding
//! headers from untrusted peers never reach the upstream, and the audit records what a client
//! sent even when it is not ASCII.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An upstream that reads the whole request body, then answers 200 with every header it
/// received, in order, as `[[name, value], …]` (repeated headers stay repeated).
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let count = count.clone();
                    async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        let headers: Vec<_> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                [
                                    k.as_str().to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                ]
                            })
                            .collect();
                        let body = req.into_body().collect().await;
                        let body = serde_json::json!({
                            "headers": headers,
                            "body_ok": body.is_ok(),
                        })
                        .to_string();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { addr, requests }
}

/// A gate in front of a fresh `upstream()`, with an admin listener; `gate_extra` is added to
/// `[gate]`. Everyone is allowed to `api.test`.
async fn gate(gate_extra: &str) -> (TestGate, Upstream) {
    let up = upstream().await;
    let policy = format!(
        r#"
[gate]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{gate_extra}

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://{}"

[[app.policy]]
name = "open"
action = "allow"
include = [{{ everyone = true }}]
"#,
        up.addr
    );
    (start_gate(&policy, |_| {}).await, up)
}

/// A response read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The upstream echo's headers named `name` (lower case), in order.
    fn upstream_saw(&self, name: &str) -> Vec<String> {
        echoed(&self.json(), name)
    }
}

/// The headers named `name` (lower case) in the upstream echo's JSON body, in order.
fn echoed(body: &serde_json::Value, name: &str) -> Vec<String> {
    body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

/// Write `request` as it is, then read one response (head and a `Content-Length` body, or the
/// rest of the stream when there is none).
async fn send_raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let read = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // A refusing server may close before it has read everything: that is not our error.
        let _ = s.write_all(request).await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "connection closed before a response head: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head[9..12].parse().unwrap();
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let mut body = buf[head_end..].to_vec();
        loop {
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        Raw { status, head, body }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

async fn metrics(g: &TestGate) -> String {
    let url = format!("http://{}/metrics", g.gate.admin_addr.unwrap());
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the metric line starting with `prefix` (labels included), 0 when absent.
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

/// The request is refused with `status` by the HTTP parser, never reaches the upstream, is
/// audited once with the peer IP and `reason`, and is counted in `botgate_requests_total`.
async fn assert_parser_refusal(request: &[u8], status: u16, reason: &str) {
    assert_parser_refusal_with("", request, status, reason).await;
}

async fn assert_parser_refusal_with(gate_extra: &str, request: &[u8], status: u16, reason: &str) {
    let (g, up) = gate(gate_extra).await;
    let resp = send_raw(g.gate.addr, request).await;
    assert_eq!(resp.status, status, "{}", resp.head);
    let events = g.wait_for_access_events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = &events[0];
    assert_eq!(ev["status"], status, "{ev}");
    assert_eq!(ev["deny_reason"], reason, "{ev}");
    assert_eq!(ev["decision"], "deny", "{ev}");
    assert_eq!(ev["allowed"], false, "{ev}");
    assert_eq!(ev["ip_address"], "127.0.0.1", "{ev}");
    let counted = format!(
        "botgate_requests_total{{app=\"\",decision=\"deny\",connection_method=\"none\",status=\"{status}\"}}"
    );
    let seen = eventually(Duration::from_secs(5), || async {
        metric(&metrics(&g).await, &counted) == 1
    })
    .await;
    assert!(seen, "not counted as {counted}:\n{}", metrics(&g).await);
    assert_eq!(
        up.requests.load(Ordering::SeqCst),
        0,
        "reached the upstream"
    );
}

#[tokio::test]
async fn nul_in_header_is_audited_as_malformed() {
    assert_parser_refusal(
        b"GET / HTTP/1.1\r\nHost: api.test\r\nX-Note: a\0b\r\n\r\n",
        400,
        "malformed_request",
    )
    .await;
}

#[tokio::test]
async fn obs_fold_is_audited_as_malformed() {
    assert_parser_refusal(
        b"GET / HTTP/1.1\r\nHost: api.test\r\nX-Note: a\r\n  folded\r\n\r\n",
        400,
        "malformed_request",
    )
    .await;
}

#[tokio::test]
async fn conflicting_content_length_is_audited_as_malformed() {
    assert_parser_refusal(
        b"POST / HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
        "malformed_request",
    )
    .await;
}

#[tokio::test]
async fn bad_transfer_encoding_is_audited_as_malformed() {
    assert_parser_refusal(
        b"POST / HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
        "malformed_request",
    )
    .await;
}

#[tokio::test]
async fn huge_header_is_audited_as_headers_too_large() {
    let mut req = b"GET / HTTP/1.1\r\nHost: api.test\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 100 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    assert_parser_refusal(&req, 431, "headers_too_large").await;
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut req = b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n".to_vec();
    for i in 0..n {
        req.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[tokio::test]
async fn too_many_headers_is_audited_as_headers_too_large() {
    assert_parser_refusal(&with_headers(100), 431, "headers_too_large").await;
}

#[tokio::test]
async fn header_limits_are_configurable() {
    // 20 headers pass the default limit of 100 but not `max_headers = 16`.
    let (g, _up) = gate("").await;
    assert_eq!(send_raw(g.gate.addr, &with_headers(20)).await.status, 200);
    assert_parser_refusal_with(
        "max_headers = 16",
        &with_headers(20),
        431,
        "headers_too_large",
    )
    .await;
    // A 12 KiB header passes the default 16 KiB head but not `max_header_bytes = 8192`.
    let mut big = b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 12 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(send_raw(g.gate.addr, &big).await.status, 200);
    assert_parser_refusal_with("max_header_bytes = 8192", &big, 431, "headers_too_large").await;
}

/// The request is refused with 400 by the gate (JSON body naming the problem), never reaches
/// the upstream, and is audited as `malformed_request`.
async fn assert_gate_400(request: &[u8], problem: &str) {
    let (g, up) = gate("").await;
    let resp = send_raw(g.gate.addr, request).await;
    assert_eq!(resp.status, 400, "{}", resp.head);
    let body = resp.json();
    assert!(body["detail"].as_str().unwrap().contains(problem), "{body}");
    let events = g.wait_for_access_events(1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["status"], 400);
    assert_eq!(events[0]["deny_reason"], "malformed_request");
    assert_eq!(events[0]["ray_id"], body["ray_id"]);
    assert_eq!(
        up.requests.load(Ordering::SeqCst),
        0,
        "reached the upstream"
    );
}

#[tokio::test]
async fn duplicate_host_header_is_400() {
    assert_gate_400(
        b"GET / HTTP/1.1\r\nHost: api.test\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        "Host",
    )
    .await;
}

#[tokio::test]
async fn host_differing_from_absolute_target_is_400() {
    assert_gate_400(
        b"GET http://api.test/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        "Host",
    )
    .await;
}

#[tokio::test]
async fn absolute_target_with_matching_host_is_forwarded() {
    let (g, _up) = gate("").await;
    for req in [
        &b"GET http://api.test/x HTTP/1.1\r\nHost: API.test\r\nConnection: close\r\n\r\n"[..],
        b"GET http://api.test/x HTTP/1.1\r\nHost: api.test:80\r\nConnection: close\r\n\r\n",
    ] {
        let resp = send_raw(g.gate.addr, req).await;
        assert_eq!(resp.status, 200, "{}", resp.head);
        assert_eq!(resp.upstream_saw("host").len(), 1);
    }
}

#[tokio::test]
async fn http11_request_without_host_is_400() {
    assert_gate_400(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "Host").await;
}

const SPOOFED: &[u8] = b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\
X-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 203.0.113.10\r\n\
Forwarded: for=203.0.113.11\r\nCf-Connecting-Ip: 203.0.113.12\r\n\
X-Forwarded-Host: evil.test\r\n\r\n";

#[tokio::test]
async fn untrusted_x_forwarded_for_is_replaced() {
    let (g, _up) = gate("").await;
    let resp = send_raw(g.gate.addr, SPOOFED).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.upstream_saw("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(resp.upstream_saw("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(resp.upstream_saw("cf-connecting-ip"), ["127.0.0.1"]);
    assert!(
        resp.upstream_saw("forwarded").is_empty(),
        "{:?}",
        resp.json()
    );
    assert!(resp.upstream_saw("x-forwarded-host").is_empty());
    let ev = &g.wait_for_access_events(1).await[0];
    assert_eq!(ev["ip_address"], "127.0.0.1");
    let m = metrics(&g).await;
    assert_eq!(metric(&m, "botgate_spoofed_forwarded_for_total "), 1, "{m}");
}

#[tokio::test]
async fn trusted_proxy_x_forwarded_for_is_appended() {
    let (g, _up) = gate(r#"trusted_proxies = ["127.0.0.0/8"]"#).await;
    let resp = send_raw(g.gate.addr, SPOOFED).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    // The proxy's chain plus the proxy itself; the client is the right-most untrusted address.
    assert_eq!(
        resp.upstream_saw("x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );
    assert_eq!(resp.upstream_saw("x-real-ip"), ["203.0.113.9"]);
    assert_eq!(resp.upstream_saw("cf-connecting-ip"), ["203.0.113.9"]);
    assert_eq!(resp.upstream_saw("forwarded"), ["for=203.0.113.11"]);
    let ev = &g.wait_for_access_events(1).await[0];
    assert_eq!(ev["ip_address"], "203.0.113.9");
}

#[tokio::test]
async fn non_ascii_user_agent_is_recorded() {
    let (g, _up) = gate("").await;
    let req = b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\
User-Agent: bot/1.0 (caf\xc3\xa9; \xff)\r\n\r\n";
    assert_eq!(send_raw(g.gate.addr, req).await.status, 200);
    let ev = &g.wait_for_access_events(1).await[0];
    // Valid UTF-8 is kept; a byte that is not is written as \xFF.
    assert_eq!(ev["user_agent"], "bot/1.0 (café; \\xFF)", "{ev}");
}

#[tokio::test]
async fn malformed_chunked_body_is_400_not_502() {
    let (g, _up) = gate("").await;
    let req = b"POST / HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\nzz-not-hex\r\n\r\n";
    let resp = send_raw(g.gate.addr, req).await;
    assert_eq!(resp.status, 400, "{}", resp.head);
    let ev = &g.wait_for_access_events(1).await[0];
    assert_eq!(ev["status"], 400, "{ev}");
    assert_eq!(ev["deny_reason"], "malformed_request", "{ev}");
    let m = metrics(&g).await;
    assert_eq!(metric(&m, "botgate_upstream_errors_total "), 0, "{m}");
}

#[tokio::test]
async fn audit_refusals_counted_once() {
    let (g, _up) = gate(r#"audit_log = "/dev/full""#).await;
    let get = b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
    // The first write fails and the gate closes; from then on every request is a refusal.
    let closed = eventually(Duration::from_secs(5), || async {
        send_raw(g.gate.addr, get).await.status == 503
    })
    .await;
    assert!(closed, "the gate never failed closed");
    for _ in 0..4 {
        assert_eq!(send_raw(g.gate.addr, get).await.status, 503);
    }
    let m = metrics(&g).await;
    assert_eq!(metric(&m, "botgate_audit_refusals_total "), 5, "{m}");
}

/// What the upstream saw as `name` for a request curl sent with `args` (HTTP/1.1 and h2c).
async fn curl_upstream_saw(g: &TestGate, args: &[&str], name: &str) -> Vec<String> {
    let port = g.gate.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--resolve", &format!("api.test:{port}:127.0.0.1")])
        .args(args)
        .arg(format!("http://api.test:{port}/"))
        .output()
        .await
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    echoed(&serde_json::from_slice(&out.stdout).unwrap(), name)
}

#[tokio::test]
async fn curl_forwarding_headers_from_untrusted_peer_are_replaced() {
    let (g, _up) = gate("").await;
    let spoof = [
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "-H",
        "X-Real-IP: 203.0.113.10",
        "-H",
        "Forwarded: for=203.0.113.11",
    ];
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let args: Vec<&str> = std::iter::once(version).chain(spoof).collect();
        let saw = |name| curl_upstream_saw(&g, &args, name);
        assert_eq!(saw("x-forwarded-for").await, ["127.0.0.1"], "{version}");
        assert_eq!(saw("x-real-ip").await, ["127.0.0.1"], "{version}");
        assert!(saw("forwarded").await.is_empty(), "{version}");
    }
}

#[tokio::test]
async fn curl_huge_header_gets_431_and_is_audited() {
    let (g, _up) = gate("").await;
    let port = g.gate.addr.port();
    let big = format!("X-Big: {}", "a".repeat(100 * 1024));
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "--resolve",
            &format!("api.test:{port}:127.0.0.1"),
            "-H",
            &big,
        ])
        .arg(format!("http://api.test:{port}/"))
        .output()
        .await
        .expect("curl is installed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "431");
    let events = g.wait_for_access_events(1).await;
    assert_eq!(events[0]["deny_reason"], "headers_too_large");
    assert_eq!(events[0]["ip_address"], "127.0.0.1");
}

#[tokio::test]
async fn long_target_is_audited_as_uri_too_long() {
    // Only a head limit above 64 KiB lets a target that long be parsed at all.
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', 70 * 1024));
    req.extend_from_slice(b" HTTP/1.1\r\nHost: api.test\r\n\r\n");
    assert_parser_refusal_with("max_header_bytes = 262144", &req, 414, "uri_too_long").await;
}
