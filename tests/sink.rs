//! SIEM push end to end against a real local HTTP endpoint (hyper on 127.0.0.1): batches
//! arrive; the endpoint goes down (connection refused) and fails (503); events spool; the
//! endpoint returns; botgate restarts in between; every event arrives exactly once.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use botgate::audit::{AccessEvent, AuditBus, EventKind};
use botgate::sink::{Sink, SinkConfig, SinkFormat, SinkHandle};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Default)]
struct Seen {
    rays: Mutex<Vec<String>>,
    batch_sizes: Mutex<Vec<usize>>,
    bad_requests: Mutex<Vec<String>>,
    failing: AtomicBool,
}

/// The endpoint: collects the ray ids of NDJSON events; can fail with 503 or go away.
struct Endpoint {
    addr: SocketAddr,
    seen: Arc<Seen>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Endpoint {
    async fn start() -> Self {
        let mut e = Endpoint {
            addr: "127.0.0.1:0".parse().unwrap(),
            seen: Arc::default(),
            server: None,
        };
        e.up().await;
        e
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let seen = self.seen.clone();
        self.server = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) closes every open connection too.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, seen.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
    }

    fn count(&self) -> usize {
        self.seen.rays.lock().unwrap().len()
    }
}

async fn handle(
    req: Request<Incoming>,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (gzip, auth, ctype) = (
        header("content-encoding"),
        header("authorization"),
        header("content-type"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if seen.failing.load(Ordering::SeqCst) {
        return Ok(Response::builder()
            .status(503)
            .body(Full::new(Bytes::from("busy")))
            .unwrap());
    }
    let mut text = String::new();
    let decoded = match gzip.as_deref() {
        Some("gzip") => flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .is_ok(),
        _ => false,
    };
    if !decoded
        || auth.as_deref() != Some("Bearer sink-test-token")
        || ctype.as_deref() != Some("application/x-ndjson")
    {
        seen.bad_requests
            .lock()
            .unwrap()
            .push(format!("gzip={gzip:?} auth={auth:?} type={ctype:?}"));
        return Ok(Response::builder()
            .status(400)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let rays: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ray_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    seen.batch_sizes.lock().unwrap().push(rays.len());
    seen.rays.lock().unwrap().extend(rays);
    Ok(Response::new(Full::new(Bytes::from("{}"))))
}

fn event(n: usize) -> Arc<AccessEvent> {
    let mut e = AccessEvent::empty(EventKind::Access, chrono::Utc::now(), format!("e{n:04}"));
    e.decision = "allow".into();
    Arc::new(e)
}

fn config(endpoint: &Endpoint) -> SinkConfig {
    let mut cfg = SinkConfig::new(
        "test-siem",
        &format!("http://{}/ingest", endpoint.addr),
        SinkFormat::Ndjson,
    );
    cfg.auth_header = Some("Bearer sink-test-token".into());
    cfg.gzip = true;
    cfg.batch_size = 10;
    cfg.flush_interval_ms = 50;
    cfg.retry_initial_ms = 20;
    cfg.retry_max_ms = 200;
    cfg.timeout_ms = 2000;
    cfg
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn publish(bus: &AuditBus, range: std::ops::Range<usize>) {
    for n in range {
        bus.publish(event(n));
    }
}

fn failures(sink: &SinkHandle) -> u64 {
    sink.stats.failed_attempts.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_exactly_once_through_outages_and_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut endpoint = Endpoint::start().await;
    let bus = AuditBus::new(4096);
    let sink = Sink::start(config(&endpoint), state.path(), bus.subscribe()).unwrap();

    // 1. Batches arrive, at most batch_size each.
    publish(&bus, 0..25);
    wait_for("the first 25 events", || endpoint.count() == 25).await;
    assert!(
        endpoint
            .seen
            .batch_sizes
            .lock()
            .unwrap()
            .iter()
            .all(|n| (1..=10).contains(n))
    );

    // 2. The endpoint goes away: events spool, nothing arrives.
    endpoint.down().await;
    publish(&bus, 25..55);
    let before = failures(&sink);
    wait_for("failed delivery attempts", || failures(&sink) >= before + 3).await;
    assert_eq!(endpoint.count(), 25);
    let spooled = sink.stats.spool_bytes.load(Ordering::Relaxed);
    assert!(spooled > 0);

    // 3. It comes back on the same address: the backlog is delivered.
    endpoint.up().await;
    wait_for("the backlog", || endpoint.count() == 55).await;

    // 4. It answers 503 for a while: retried, not lost.
    endpoint.seen.failing.store(true, Ordering::SeqCst);
    publish(&bus, 55..65);
    let before = failures(&sink);
    wait_for("503 answers", || failures(&sink) >= before + 2).await;
    endpoint.seen.failing.store(false, Ordering::SeqCst);
    wait_for("events after the 503s", || endpoint.count() == 65).await;

    // 5. Down again, and botgate restarts while events are spooled.
    endpoint.down().await;
    publish(&bus, 65..85);
    let before = failures(&sink);
    wait_for("failed attempts before the restart", || {
        failures(&sink) > before
    })
    .await;
    sink.shutdown().await;
    let sink = Sink::start(config(&endpoint), state.path(), bus.subscribe()).unwrap();
    endpoint.up().await;
    publish(&bus, 85..90);
    wait_for("everything after the restart", || endpoint.count() >= 90).await;
    // Stop the sender before judging: it finishes the request in flight, so whatever it was
    // going to send twice has arrived (the spool replays in order, old events before new).
    let stats = sink.stats.clone();
    sink.shutdown().await;

    let rays = endpoint.seen.rays.lock().unwrap().clone();
    let unique: BTreeSet<&String> = rays.iter().collect();
    assert_eq!(unique.len(), rays.len(), "an event arrived twice");
    let expected: BTreeSet<String> = (0..90).map(|n| format!("e{n:04}")).collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "an event was lost"
    );
    assert!(
        endpoint.seen.bad_requests.lock().unwrap().is_empty(),
        "{:?}",
        endpoint.seen.bad_requests
    );
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn event_kind_filter_and_missing_auth_env_var() {
    let state = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::start().await;
    let bus = AuditBus::new(64);
    let mut cfg = config(&endpoint);
    cfg.events = Some(vec![EventKind::Alert]);
    let sink = Sink::start(cfg, state.path(), bus.subscribe()).unwrap();
    bus.publish(event(1));
    let mut alert = (*event(2)).clone();
    alert.event = EventKind::Alert;
    bus.publish(Arc::new(alert));
    wait_for("the alert", || endpoint.count() == 1).await;
    assert_eq!(endpoint.seen.rays.lock().unwrap()[0], "e0002");
    sink.shutdown().await;

    let mut cfg = config(&endpoint);
    cfg.auth_header = Some("env:BOTGATE_SINK_TEST_UNSET_VARIABLE".into());
    let err = Sink::start(cfg, state.path(), bus.subscribe())
        .unwrap_err()
        .to_string();
    assert!(err.contains("BOTGATE_SINK_TEST_UNSET_VARIABLE"), "{err}");
}
