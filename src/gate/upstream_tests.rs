//! The sticky upstream connection through a real gate: one upstream connection per downstream
//! keep-alive connection, a fresh one after the upstream closes, origin-form targets, the
//! client's `Host`, and HTTP/2 downstream streams through the pool.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::audit::AuditBus;
use crate::clock::SystemClock;
use crate::gate::{self, GateOptions, RunningGate};
use crate::store::Store;

/// What the upstream saw: connections accepted and request heads (request line + host).
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    heads: Mutex<Vec<String>>,
}

/// A minimal HTTP/1.1 upstream: `200 ok` to every GET; `/close` answers with
/// `Connection: close` and closes.
async fn upstream() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let line = head.lines().next().unwrap_or("").to_string();
                    let host = head
                        .lines()
                        .find_map(|l| l.strip_prefix("host: "))
                        .unwrap_or("-")
                        .to_string();
                    s.heads.lock().unwrap().push(format!("{line} host={host}"));
                    let close = line.starts_with("GET /close ");
                    if line.starts_with("GET /slow ") {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let answer: &[u8] = if close {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if stream.write_all(answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn start(upstream: SocketAddr) -> (RunningGate, tempfile::TempDir) {
    start_with(upstream, 0).await
}

async fn start_with(upstream: SocketAddr, workers: usize) -> (RunningGate, tempfile::TempDir) {
    let (gate, dir) = try_start(upstream, workers, "127.0.0.1:0".parse().unwrap()).await;
    (gate.unwrap(), dir)
}

async fn try_start(
    upstream: SocketAddr,
    workers: usize,
    listen: SocketAddr,
) -> (Result<RunningGate, gate::GateError>, tempfile::TempDir) {
    let text = format!(
        r#"
[gate]
listen = "127.0.0.1:0"

[[app]]
name = "open"
hostnames = ["open.test"]
upstream = "http://{upstream}"

[[app.policy]]
name = "everyone"
action = "bypass"
include = [{{ everyone = true }}]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let file: crate::config::PolicyFile = toml::from_str(&text).unwrap();
    let policies = crate::policy::compile(&file).unwrap();
    let mut opts = GateOptions::from_file(&file, dir.path()).unwrap();
    opts.workers = workers;
    opts.listen = listen;
    let hub = Arc::new(crate::store::hub::InventoryHub::start((*store).clone()).unwrap());
    let gate = gate::start(
        opts,
        policies,
        hub,
        AuditBus::default(),
        Arc::new(SystemClock),
        None,
    )
    .await;
    (gate, dir)
}

/// One HTTP/1.1 keep-alive connection to the gate.
async fn h1(gate: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let io = TokioIo::new(TcpStream::connect(gate).await.unwrap());
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let req = Request::get(path)
        .header("host", "open.test")
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_connection_per_downstream_connection_and_a_new_one_after_close() {
    let (up, seen) = upstream().await;
    let (gate, _dir) = start(up).await;
    let mut a = h1(gate.addr).await;
    for i in 0..20 {
        let (status, body) = get(&mut a, &format!("/a?i={i}")).await;
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    {
        let heads = seen.heads.lock().unwrap();
        assert_eq!(heads[0], "GET /a?i=0 HTTP/1.1 host=open.test");
        assert_eq!(heads[19], "GET /a?i=19 HTTP/1.1 host=open.test");
    }

    // The upstream closes after this answer: the next request opens a fresh connection.
    assert_eq!(get(&mut a, "/close").await.0, 200);
    assert_eq!(get(&mut a, "/").await.0, 200);
    assert_eq!(get(&mut a, "/").await.0, 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);

    // A second downstream connection has its own upstream connection.
    let mut b = h1(gate.addr).await;
    assert_eq!(get(&mut b, "/b").await.0, 200);
    assert_eq!(get(&mut a, "/a").await.0, 200);
    assert_eq!(get(&mut b, "/b").await.0, 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    assert_eq!(seen.heads.lock().unwrap().len(), 26);
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_go_through_the_pool() {
    let (up, seen) = upstream().await;
    let (gate, _dir) = start(up).await;
    let io = TokioIo::new(TcpStream::connect(gate.addr).await.unwrap());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut answers = Vec::new();
    for i in 0..8 {
        let req = Request::get(format!("http://open.test/h2?i={i}"))
            .body(Empty::new())
            .unwrap();
        answers.push(sender.send_request(req));
    }
    for a in answers {
        let resp = tokio::time::timeout(Duration::from_secs(10), a)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let heads = seen.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 8);
    // The pool sets Host from the upstream URI when the request (HTTP/2) has none.
    assert!(
        heads.iter().all(|h| h.starts_with("GET /h2?i=")),
        "{heads:?}"
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_workers_do_not_share_a_port_another_gate_listens_on() {
    let (up, _) = upstream().await;
    let (first, _dir) = start_with(up, 2).await;
    let (second, _dir2) = try_start(up, 2, first.addr).await;
    let Err(err) = second else {
        panic!("a second gate on the same port is refused");
    };
    assert!(
        err.to_string()
            .contains(&format!("cannot listen on {}", first.addr)),
        "{err}"
    );
    first.shutdown().await;
}

#[tokio::test]
async fn per_core_workers_serve_and_drain_in_flight_requests_on_shutdown() {
    let (up, seen) = upstream().await;
    let (gate, _dir) = start_with(up, 3).await;
    // Many connections, so the kernel hands some to every worker's socket.
    let mut conns = Vec::new();
    for i in 0..12 {
        let mut c = h1(gate.addr).await;
        assert_eq!(get(&mut c, &format!("/w?i={i}")).await.0, 200);
        conns.push(c);
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 12);
    // A request still at the upstream when shutdown starts is answered, then the gate stops.
    let mut slow = conns.pop().unwrap();
    let in_flight = tokio::spawn(async move { get(&mut slow, "/slow").await.0 });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen
        .heads
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.starts_with("GET /slow "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = gate.addr;
    tokio::time::timeout(Duration::from_secs(10), gate.shutdown())
        .await
        .expect("shutdown finishes");
    assert_eq!(in_flight.await.unwrap(), 200);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
