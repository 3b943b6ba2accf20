//! `botgate demo` end to end: the real scenario (store, gate, stub upstream, bots on loopback
//! source addresses) through the library and through the binary.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use botgate::audit::{AccessEvent, BusMessage, EventKind};
use botgate::credential::{ClientId, ClientSecret};
use botgate::demo::credentials::{CredentialFile, write_credential_file};
use botgate::demo::{self, DemoOptions};
use botgate::store::NewToken;
use tokio::sync::broadcast;

/// Collect access events from `rx` until `done` says so or the deadline passes.
async fn collect_until(
    rx: &mut broadcast::Receiver<BusMessage>,
    timeout: Duration,
    mut done: impl FnMut(&[std::sync::Arc<AccessEvent>]) -> bool,
) -> Vec<std::sync::Arc<AccessEvent>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline && !done(&seen) {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Ok(BusMessage::Event(ev))) if ev.event == EventKind::Access => seen.push(ev),
            Ok(Err(broadcast::error::RecvError::Closed)) => break,
            _ => {}
        }
    }
    seen
}

fn revoked_legacy(e: &AccessEvent) -> bool {
    !e.allowed
        && e.deny_reason.as_deref() == Some("token_revoked")
        && e.service_token_name.as_deref() == Some("ci-legacy-prod")
}

fn denied_from_russia(e: &AccessEvent) -> bool {
    !e.allowed && e.country.as_deref() == Some("RU")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_traffic_has_allowed_and_denied_requests_with_revoked_token_and_russian_source() {
    let running = demo::start(DemoOptions {
        rate_multiplier: 20.0,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let mut rx = running.bus().subscribe();
    let state_dir = running.state_dir().to_path_buf();
    assert!(state_dir.join("policy.toml").is_file());

    let seen = collect_until(&mut rx, Duration::from_secs(20), |evs| {
        evs.iter().any(|e| e.allowed)
            && evs.iter().any(|e| revoked_legacy(e))
            && evs.iter().any(|e| denied_from_russia(e))
            && evs
                .iter()
                .any(|e| e.service_token_name.as_deref() == Some("ci-deploy-prod") && e.allowed)
            && evs
                .iter()
                .any(|e| e.ip_address.as_deref() == Some("127.0.5.66"))
    })
    .await;
    assert!(seen.iter().any(|e| e.allowed), "no allowed request");
    assert!(
        seen.iter().any(|e| revoked_legacy(e)),
        "no token_revoked denial for ci-legacy-prod"
    );
    assert!(
        seen.iter().any(|e| denied_from_russia(e)),
        "no denied request from RU"
    );
    // Countries come from the geo table over real source addresses, not invented.
    let leaked = seen
        .iter()
        .find(|e| e.ip_address.as_deref() == Some("127.0.5.66"));
    let e = leaked.expect("a request of the leaked token from 127.0.5.66 was seen");
    assert_eq!(e.country.as_deref(), Some("RU"));
    assert_eq!(e.service_token_name.as_deref(), Some("ci-deploy-staging"));
    assert_eq!(e.deny_reason.as_deref(), Some("no_policy_matched"));
    let healthy = seen
        .iter()
        .find(|e| e.service_token_name.as_deref() == Some("ci-deploy-prod") && e.allowed)
        .expect("ci-deploy-prod is allowed from the US");
    assert_eq!(healthy.country.as_deref(), Some("US"));

    let summary = running.stop().await;
    assert!(summary.allowed > 0 && summary.denied > 0, "{summary}");
    assert_eq!(
        summary.requests,
        summary.allowed + summary.denied + summary.errors
    );
    let sent: u64 = summary.bots.iter().map(|b| b.sent).sum();
    assert!(
        sent >= summary.requests,
        "bots sent {sent}, gate saw {}",
        summary.requests
    );
    assert!(!state_dir.exists(), "stop removes the temp state dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_credential_file_is_picked_up_except_by_the_straggler() {
    let running = demo::start(DemoOptions {
        rate_multiplier: 10.0,
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    // A rotation: a new token, admitted by the policy next to the old one, written to the file.
    let id = ClientId::generate();
    let secret = ClientSecret::generate();
    let now = chrono::Utc::now();
    running
        .store()
        .create_token(&NewToken {
            name: "ci-deploy-prod-v2",
            client_id: &id,
            secret_hash: secret.hash(),
            created_at: now,
            expires_at: now + chrono::Duration::days(90),
            bounds: Default::default(),
        })
        .await
        .unwrap();
    let policy = std::fs::read_to_string(running.policy_path()).unwrap();
    let edited = policy.replace(
        "{ service_token = \"ci-deploy-prod\" },",
        "{ service_token = \"ci-deploy-prod\" },\n  { service_token = \"ci-deploy-prod-v2\" },",
    );
    assert_ne!(policy, edited);
    std::fs::write(running.policy_path(), edited).unwrap();
    running.reload_policy_file().unwrap();
    let mut rx = running.bus().subscribe();
    write_credential_file(
        &running.credential_files()["ci-deploy-prod"],
        &CredentialFile::Token {
            name: "ci-deploy-prod-v2".into(),
            client_id: id.to_string(),
            client_secret: secret.expose().to_string(),
            expires_at: None,
        },
    )
    .unwrap();

    // Once the fresh runner uses v2, the straggler must still be seen with the old token.
    let seen = collect_until(&mut rx, Duration::from_secs(20), |evs| {
        let v2 = evs.iter().position(|e| {
            e.allowed && e.service_token_name.as_deref() == Some("ci-deploy-prod-v2")
        });
        v2.is_some_and(|i| {
            evs[i..].iter().any(|e| {
                e.service_token_name.as_deref() == Some("ci-deploy-prod")
                    && e.ip_address.as_deref() == Some("127.0.1.11")
            })
        })
    })
    .await;
    let v2_sources: HashSet<_> = seen
        .iter()
        .filter(|e| e.allowed && e.service_token_name.as_deref() == Some("ci-deploy-prod-v2"))
        .filter_map(|e| e.ip_address.clone())
        .collect();
    assert_eq!(
        v2_sources,
        HashSet::from(["127.0.1.10".to_string()]),
        "only the re-reading runner switches"
    );
    let last_v2 = seen
        .iter()
        .rposition(|e| e.service_token_name.as_deref() == Some("ci-deploy-prod-v2"))
        .unwrap();
    let first_v2 = seen
        .iter()
        .position(|e| e.service_token_name.as_deref() == Some("ci-deploy-prod-v2"))
        .unwrap();
    assert!(
        seen[first_v2..].iter().any(|e| {
            e.service_token_name.as_deref() == Some("ci-deploy-prod")
                && e.ip_address.as_deref() == Some("127.0.1.11")
        }),
        "the straggler keeps the old token after the switch (v2 seen at {first_v2}..{last_v2})"
    );
    running.stop().await;
}

#[test]
fn headless_cli_prints_a_summary_and_removes_its_state_dir() {
    let out = assert_cmd::Command::cargo_bin("botgate")
        .unwrap()
        .args(["demo", "--headless", "--duration", "5"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let value = |key: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no `{key}:` line in\n{stdout}"))
            .parse()
            .unwrap()
    };
    assert!(value("requests") > 0, "{stdout}");
    assert!(value("allowed") > 0, "{stdout}");
    assert!(value("denied") > 0, "{stdout}");
    assert!(
        value("alerts") > 0,
        "the detectors raise at least one alert in 5 s\n{stdout}"
    );
    assert!(
        value("siem events") > 0,
        "the local SIEM endpoint got the sink's batches\n{stdout}"
    );
    assert_eq!(
        value("siem alerts"),
        value("alerts"),
        "every distinct alert reached the local SIEM endpoint\n{stdout}"
    );
    assert!(
        stdout.contains("ci-legacy-prod (revoked)") && stdout.contains("device-0001.factory.corp"),
        "per-bot counts\n{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "plain text only");
    let dir = stderr
        .lines()
        .find_map(|l| l.split("state dir ").nth(1))
        .expect("the state dir is named on stderr");
    assert!(
        !std::path::Path::new(dir.trim()).exists(),
        "{dir} was not removed"
    );
}

/// The set-up's admin events (the revocation of ci-legacy-prod) come from the store's journal
/// through the runtime's writer before the first bot sends, so a revoked-credential detector
/// knows about it in time, and the runtime's detectors see the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_admin_events_come_from_the_journal_before_the_first_request() {
    let bus = botgate::audit::AuditBus::default();
    let mut rx = bus.subscribe();
    let running = demo::start(DemoOptions {
        rate_multiplier: 20.0,
        bus: Some(bus),
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut order = Vec::new();
    while Instant::now() < deadline && !order.contains(&EventKind::Access) {
        if let Ok(Ok(BusMessage::Event(ev))) =
            tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            match ev.event {
                EventKind::Admin if ev.decision == "token_revoke" => order.push(EventKind::Admin),
                EventKind::Access => order.push(EventKind::Access),
                _ => {}
            }
        }
    }
    running.stop().await;
    assert_eq!(
        order.first(),
        Some(&EventKind::Admin),
        "the token_revoke admin event precedes the traffic: {order:?}"
    );
    assert!(order.contains(&EventKind::Access), "no traffic seen");
}
