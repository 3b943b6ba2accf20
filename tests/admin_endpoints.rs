//! The admin listener: /healthz, /metrics in Prometheus text format, /events as SSE.

mod common;

use std::time::Duration;

use common::*;

const POLICY: &str = r#"
[gate]
admin_listen = "127.0.0.1:0"

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "{upstream}"

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

/// A line of the exposition format: `name{label="v",...} value` or a `# HELP`/`# TYPE` comment.
fn valid_prometheus_line(line: &str) -> bool {
    if let Some(rest) = line.strip_prefix("# ") {
        return rest.starts_with("HELP ") || rest.starts_with("TYPE ");
    }
    let re = regex::Regex::new(r#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eE]+|\+Inf|NaN$"#).unwrap();
    re.is_match(line)
}

#[tokio::test]
async fn metrics_health_and_events() {
    let mut tok = None;
    let g = start_gate_with(
        POLICY,
        |s| {
            tok = Some(create_token(
                s,
                "ci-deploy-prod",
                chrono::Duration::days(30),
            ))
        },
        |o| {
            o.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        },
    )
    .await;
    let tok = tok.unwrap();
    let admin = g.gate.admin_addr.unwrap();
    let c = client();

    // Subscribe to /events before traffic.
    let mut sse = c
        .get(format!("http://{admin}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");

    let r = c
        .get(g.url("/"))
        .header("host", "api.test")
        .header("CF-Access-Client-Id", &tok.client_id)
        .header("CF-Access-Client-Secret", &tok.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(g.url("/"))
        .header("host", "api.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(text.starts_with("data: {"), "{text}");

    let health = c
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let body = metrics_when(&c, admin, |body| {
        body.contains(r#"decision="deny""#) && body.contains(r#"decision="allow""#)
    })
    .await;
    let counted = body.contains(r#"decision="deny""#);
    assert!(counted, "{body}");
    for line in body.lines() {
        assert!(valid_prometheus_line(line), "not Prometheus text: {line:?}");
    }
    assert!(body.contains(r#"botgate_requests_total{app="api",decision="allow",connection_method="service_token",status="200"} 1"#), "{body}");
    assert!(body.contains(r#"botgate_token_expiry_timestamp_seconds{name="ci-deploy-prod""#));
    assert!(body.contains("botgate_request_duration_seconds_bucket{le=\"+Inf\"}"));

    // An alert on the bus shows as an open alert labelled by rule and severity, and a
    // resolution closes it (Alertmanager can route on the labels).
    let alert = |state: botgate::detect::AlertState| {
        let mut ev = botgate::audit::AccessEvent::empty(
            botgate::audit::EventKind::Alert,
            chrono::Utc::now(),
            format!("ray-{}", state.as_str()),
        );
        ev.decision = "frequency_spike".into();
        let alert = botgate::detect::Alert {
            alert_id: "frequency_spike:token:x".into(),
            rule: botgate::detect::Rule::FrequencySpike,
            severity: botgate::detect::Severity::Critical,
            title: "spike".into(),
            state,
            count: 1,
            first_seen: ev.created_at,
            last_seen: ev.created_at,
            evidence: Default::default(),
        };
        ev.details = Some(alert.to_details());
        std::sync::Arc::new(ev)
    };
    let open = r#"botgate_alerts_open{rule="frequency_spike",severity="critical"} 1"#;
    g.bus.publish(alert(botgate::detect::AlertState::Open));
    let body = metrics_when(&c, admin, |b| b.contains(open)).await;
    assert!(body.contains(open), "{body}");
    let closed = r#"botgate_alerts_open{rule="frequency_spike",severity="critical"} 0"#;
    g.bus.publish(alert(botgate::detect::AlertState::Resolved));
    let body = metrics_when(&c, admin, |b| b.contains(closed)).await;
    assert!(body.contains(closed), "{body}");
    for line in body.lines() {
        assert!(valid_prometheus_line(line), "not Prometheus text: {line:?}");
    }
}

/// `/metrics` once `ready` holds for it (or whatever it is after 5 s, for the assertion to show).
async fn metrics_when(
    c: &reqwest::Client,
    admin: std::net::SocketAddr,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let body = c
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if ready(&body) || std::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Send a request to every gate, over and over (the feeds may still be connecting), handing
/// each event that arrives on `rx` to `seen`, until it returns true or 10 s pass.
async fn request_until(
    gates: &[&TestGate],
    rx: &mut tokio::sync::mpsc::Receiver<botgate::console::Msg>,
    mut seen: impl FnMut(std::sync::Arc<botgate::audit::AccessEvent>) -> bool,
) -> bool {
    let c = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        for g in gates {
            let _ = c
                .get(g.url("/"))
                .header("host", "api.test")
                .send()
                .await
                .unwrap();
        }
        while let Ok(msg) = rx.try_recv() {
            if let botgate::console::Msg::Event(ev) = msg
                && seen(ev)
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `botgate console --attach URL`: the console's SSE feed turns `/events` into console messages.
#[tokio::test]
async fn console_attach_feed_receives_gate_events() {
    let g = start_gate_with(
        POLICY,
        |_| {},
        |o| o.admin_listen = Some("127.0.0.1:0".parse().unwrap()),
    )
    .await;
    let admin = g.gate.admin_addr.unwrap();
    let (tx, mut rx) = botgate::console::feed::channel();
    let feed = botgate::console::feed::spawn_sse(format!("http://{admin}/events"), tx);
    let mut got = None;
    request_until(&[&g], &mut rx, |ev| {
        got = Some(ev);
        true
    })
    .await;
    feed.abort();
    let ev = got.expect("an event arrived over /events");
    assert_eq!(ev.deny_reason.as_deref(), Some("missing_credentials"));
    assert_eq!(ev.app_name.as_deref(), Some("api"));
}

/// `botgate console --attach A --attach B`: two gates' streams merge into one feed, each event
/// naming the gate it came from.
#[tokio::test]
async fn console_attach_merges_several_gates_by_node() {
    let mut gates = Vec::new();
    for node in ["gate-a", "gate-b"] {
        gates.push(
            start_gate_with(
                POLICY,
                |_| {},
                |o| {
                    o.admin_listen = Some("127.0.0.1:0".parse().unwrap());
                    o.node = Some(node.into());
                },
            )
            .await,
        );
    }
    let (tx, mut rx) = botgate::console::feed::channel();
    let feeds: Vec<_> = gates
        .iter()
        .map(|g| {
            let admin = g.gate.admin_addr.unwrap();
            botgate::console::feed::spawn_sse(format!("http://{admin}/events"), tx.clone())
        })
        .collect();
    let mut nodes = std::collections::BTreeSet::new();
    let all: Vec<&TestGate> = gates.iter().collect();
    request_until(&all, &mut rx, |ev| {
        nodes.insert(ev.node.as_deref().unwrap_or("(none)").to_string());
        nodes.len() == 2
    })
    .await;
    for f in feeds {
        f.abort();
    }
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        ["gate-a", "gate-b"],
        "one feed, both gates, each event named by its gate"
    );
}
