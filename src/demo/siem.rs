//! The demo's local SIEM endpoint: a small HTTP server on 127.0.0.1:0 that receives the demo's
//! `[[sink]]` batches (NDJSON, as any webhook SIEM would) and keeps what an analyst would look
//! at: how many events arrived, and each distinct alert (by `alert_id`) with its latest state
//! and evidence. `GET /alerts` shows it as JSON, so the delivery path (bus → spool → POST) is
//! visible end to end without installing Splunk or Loki.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audit::AccessEvent;
use crate::detect::Alert;

/// The path the demo sink POSTs to.
pub const INGEST_PATH: &str = "/ingest";
/// The path that lists what arrived.
pub const ALERTS_PATH: &str = "/alerts";
/// Request bodies larger than this are refused (a sink batch is far smaller).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One distinct alert as the SIEM saw it: the latest update wins, updates are counted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReceivedAlert {
    pub alert_id: String,
    pub rule: String,
    pub severity: Option<String>,
    pub title: Option<String>,
    /// `open`, `updated` or `resolved`, from the latest update received.
    pub state: Option<String>,
    /// Token name or certificate CN, when the alert is about a credential.
    pub credential: Option<String>,
    /// Alert events received for this alert (the opening one and its updates).
    pub updates: u64,
    pub evidence: Value,
}

/// What the endpoint received so far.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiemReport {
    pub url: String,
    pub batches: u64,
    pub events: u64,
    /// Lines that were not a JSON object (a broken sink would show here).
    pub bad_lines: u64,
    pub alerts: Vec<ReceivedAlert>,
}

impl SiemReport {
    /// Distinct alerts per rule.
    pub fn alerts_by_rule(&self) -> BTreeMap<String, u64> {
        let mut by_rule = BTreeMap::new();
        for a in &self.alerts {
            *by_rule.entry(a.rule.clone()).or_default() += 1;
        }
        by_rule
    }
}

#[derive(Debug, Default)]
struct Inbox {
    batches: AtomicU64,
    events: AtomicU64,
    bad_lines: AtomicU64,
    alerts: Mutex<BTreeMap<String, ReceivedAlert>>,
}

impl Inbox {
    /// Take one NDJSON batch.
    fn ingest(&self, body: &[u8]) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        for line in body.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(ev @ Value::Object(_)) => {
                    self.events.fetch_add(1, Ordering::Relaxed);
                    if ev["event"] == "alert" {
                        // Read as the typed alert the detectors wrote.
                        let typed = serde_json::from_value::<AccessEvent>(ev)
                            .ok()
                            .and_then(|e| Some((Alert::from_event(&e).ok()?, e)));
                        match typed {
                            Some((alert, e)) => self.alert(alert, &e),
                            None => {
                                self.bad_lines.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                _ => {
                    self.bad_lines.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn alert(&self, alert: Alert, ev: &AccessEvent) {
        let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = alerts
            .entry(alert.alert_id.clone())
            .or_insert_with(|| ReceivedAlert {
                alert_id: alert.alert_id.clone(),
                rule: alert.rule.as_str().to_string(),
                severity: None,
                title: None,
                state: None,
                credential: None,
                updates: 0,
                evidence: Value::Null,
            });
        entry.updates += 1;
        entry.severity = Some(alert.severity.label().to_string());
        entry.title = Some(alert.title);
        entry.state = Some(alert.state.as_str().to_string());
        if let Some(who) = ev.identity() {
            entry.credential = Some(who.to_string());
        }
        entry.evidence = Value::Object(alert.evidence);
    }

    fn report(&self, url: &str) -> SiemReport {
        let alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        SiemReport {
            url: url.to_string(),
            batches: self.batches.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            bad_lines: self.bad_lines.load(Ordering::Relaxed),
            alerts: alerts.values().cloned().collect(),
        }
    }
}

/// A running local SIEM endpoint. `stop` (or drop) closes it.
#[derive(Debug)]
pub struct DemoSiem {
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DemoSiem {
    /// Bind 127.0.0.1:0 and serve.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inbox = Arc::new(Inbox::default());
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, inbox.clone(), addr, rx));
        Ok(Self {
            addr,
            inbox,
            shutdown,
            task,
        })
    }

    /// Where the sink POSTs.
    pub fn ingest_url(&self) -> String {
        format!("http://{}{INGEST_PATH}", self.addr)
    }

    /// Where a person (or `curl`) reads what arrived.
    pub fn alerts_url(&self) -> String {
        format!("http://{}{ALERTS_PATH}", self.addr)
    }

    /// What arrived so far.
    pub fn report(&self) -> SiemReport {
        self.inbox.report(&self.alerts_url())
    }

    /// Stop accepting and drop every open connection.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn serve(
    listener: TcpListener,
    inbox: Arc<Inbox>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let alerts_url = format!("http://{addr}{ALERTS_PATH}");
    super::upstream::serve_http(listener, "demo SIEM", shutdown, move |req| {
        answer(req, inbox.clone(), alerts_url.clone())
    })
    .await;
}

async fn answer(
    req: Request<Incoming>,
    inbox: Arc<Inbox>,
    alerts_url: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    };
    let error = |status: StatusCode, message: &str| {
        reply(
            status,
            serde_json::json!({ "error": message })
                .to_string()
                .into_bytes(),
        )
    };
    match (req.method(), req.uri().path()) {
        (&Method::POST, INGEST_PATH) => {
            let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
            match limited.collect().await {
                Ok(body) => {
                    inbox.ingest(&body.to_bytes());
                    Ok(reply(StatusCode::OK, b"{\"ok\":true}".to_vec()))
                }
                Err(e) => Ok(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("cannot read the batch: {e}"),
                )),
            }
        }
        (&Method::GET, ALERTS_PATH | "/") => {
            let body = serde_json::to_vec_pretty(&inbox.report(&alerts_url)).unwrap_or_default();
            Ok(reply(StatusCode::OK, body))
        }
        _ => Ok(error(
            StatusCode::NOT_FOUND,
            "the demo SIEM takes POST /ingest (NDJSON) and GET /alerts",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{AlertState, Rule};

    fn alert_line(id: &str, rule: Rule, state: AlertState, count: u64) -> String {
        let now = chrono::Utc::now();
        let mut ev = AccessEvent::empty(crate::audit::EventKind::Alert, now, "r".into());
        ev.decision = rule.as_str().into();
        ev.service_token_name = Some("ci-deploy-prod".into());
        let mut evidence = serde_json::Map::new();
        evidence.insert("count".into(), count.into());
        let alert = Alert {
            alert_id: id.into(),
            rule,
            severity: crate::detect::Severity::Critical,
            title: "t".into(),
            state,
            count,
            first_seen: now,
            last_seen: now,
            evidence,
        };
        ev.details = Some(alert.to_details());
        ev.to_json_line()
    }

    #[test]
    fn counts_events_and_keeps_one_entry_per_alert_with_its_latest_update() {
        let inbox = Inbox::default();
        let batch = format!(
            "{}\n{{\"event\":\"access\"}}\n{}\nnot json\n\n",
            alert_line(
                "frequency_spike:t1",
                Rule::FrequencySpike,
                AlertState::Open,
                1
            ),
            alert_line(
                "frequency_spike:t1",
                Rule::FrequencySpike,
                AlertState::Resolved,
                9
            ),
        );
        inbox.ingest(batch.as_bytes());
        inbox.ingest(
            alert_line(
                "unused_credential:t2",
                Rule::UnusedCredential,
                AlertState::Open,
                1,
            )
            .as_bytes(),
        );
        let r = inbox.report("http://x/alerts");
        assert_eq!((r.batches, r.events, r.bad_lines), (2, 4, 1));
        assert_eq!(r.alerts.len(), 2);
        let spike = &r.alerts[0];
        assert_eq!(spike.updates, 2);
        assert_eq!(spike.state.as_deref(), Some("resolved"));
        assert_eq!(spike.evidence["count"], 9);
        assert_eq!(spike.credential.as_deref(), Some("ci-deploy-prod"));
        assert_eq!(r.alerts_by_rule()["unused_credential"], 1);
    }

    #[tokio::test]
    async fn serves_ingest_and_alerts_over_http() {
        crate::install_crypto_provider();
        let siem = DemoSiem::start().await.unwrap();
        let client = reqwest::Client::new();
        let posted = client
            .post(siem.ingest_url())
            .body(alert_line(
                "a:1",
                Rule::SharedCredential,
                AlertState::Open,
                3,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 200);
        let report: Value = client
            .get(siem.alerts_url())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["events"], 1);
        assert_eq!(report["alerts"][0]["rule"], "shared_credential");
        let missing = client
            .get(format!("http://{}/nope", siem.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        siem.stop().await;
    }
}
