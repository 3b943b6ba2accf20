//! Audit event serialisation: one allowed token request as a JSONL line, as the writer does it
//! (`serde_json::to_writer` into a reused batch buffer) and as `AccessEvent::to_json_line`.

use botgate::audit::{AccessEvent, ConnectionMethod, EventKind};
use divan::{Bencher, black_box};

fn event() -> AccessEvent {
    let mut e = AccessEvent::empty(
        EventKind::Access,
        chrono::Utc::now(),
        "5f1c0a9e7b3d2c41".into(),
    );
    e.app_name = Some("api.example.com".into());
    e.allowed = true;
    e.decision = "allow".into();
    e.status = Some(200);
    e.policy_name = Some("CI deployment".into());
    e.connection_method = ConnectionMethod::ServiceToken;
    e.service_token_id = Some("0123456789abcdef0123456789abcdef.access".into());
    e.service_token_name = Some("ci-deploy-prod".into());
    e.ip_address = Some("127.0.0.1".into());
    e.user_agent = Some("curl/8.5.0".into());
    e.method = Some("GET".into());
    e.host = Some("api.example.com".into());
    e.path = Some("/v1/deploy".into());
    e.latency_ms = Some(0.412);
    e
}

#[divan::bench]
fn to_writer_reused_buffer(bencher: Bencher) {
    let e = event();
    let mut buf = Vec::with_capacity(256 * 1024);
    bencher.bench_local(|| {
        if buf.len() > 200 * 1024 {
            buf.clear();
        }
        let _ = serde_json::to_writer(&mut buf, black_box(&e));
        buf.push(b'\n');
    });
}

#[divan::bench]
fn to_json_line(bencher: Bencher) {
    let e = event();
    bencher.bench_local(|| black_box(&e).to_json_line());
}
