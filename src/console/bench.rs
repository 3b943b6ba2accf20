//! Benchmark helpers: synthetic but realistic events, ingest into an `AppState`, render one frame
//! to a `TestBackend`. Used by the `#[ignore]` throughput test and by anyone measuring the
//! console (`cargo test --lib console::bench -- --ignored --nocapture`).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use crate::audit::{AccessEvent, ConnectionMethod, EventKind};

use super::app::{AppState, Msg, update};
use super::views;

const IDENTITIES: [&str; 8] = [
    "ci-deploy-prod",
    "ci-deploy-staging",
    "monitoring-probe-prod",
    "backup-cron-prod",
    "device-0001.factory.corp",
    "device-0002.factory.corp",
    "device-0003.factory.corp",
    "legacy-sync-prod",
];
const COUNTRIES: [&str; 5] = ["SG", "VN", "DE", "US", "RU"];
const APPS: [&str; 3] = [
    "api.example.com",
    "deploy.example.com",
    "telemetry.example.com",
];

/// The `i`-th synthetic event: `per_sec` events per second from `start`, a mix of identities,
/// methods, countries and outcomes (about one in eight denied).
pub fn synthetic_event(i: u64, start: DateTime<Utc>, per_sec: u64) -> AccessEvent {
    let at = start + Duration::microseconds((i * 1_000_000 / per_sec.max(1)) as i64);
    let mut e = AccessEvent::empty(EventKind::Access, at, format!("{i:016x}"));
    let who = IDENTITIES[(i % IDENTITIES.len() as u64) as usize];
    let mtls = who.starts_with("device-");
    e.connection_method = if mtls {
        ConnectionMethod::Mtls
    } else {
        ConnectionMethod::ServiceToken
    };
    if mtls {
        e.cert_common_name = Some(who.into());
    } else {
        e.service_token_name = Some(who.into());
    }
    let denied = i % 8 == 7;
    e.allowed = !denied;
    e.decision = if denied { "deny" } else { "allow" }.into();
    e.status = Some(if denied { 403 } else { 200 });
    e.deny_reason = denied.then(|| {
        if who == "legacy-sync-prod" {
            "token_revoked"
        } else {
            "no_policy_matched"
        }
        .into()
    });
    e.app_name = Some(APPS[(i % 3) as usize].into());
    e.host = e.app_name.clone();
    e.country = Some(COUNTRIES[(i / 7 % 5) as usize].into());
    e.ip_address = Some(format!("127.0.{}.{}", i % 4 + 1, i % 200 + 2));
    e.method = Some("GET".into());
    e.path = Some("/v1/deploy".into());
    e.latency_ms = Some(1.5);
    e
}

/// `n` synthetic events (see `synthetic_event`).
pub fn synthetic_events(n: u64, start: DateTime<Utc>, per_sec: u64) -> Vec<Arc<AccessEvent>> {
    (0..n)
        .map(|i| Arc::new(synthetic_event(i, start, per_sec)))
        .collect()
}

/// Feed events into the state, as the runner does.
pub fn ingest(state: &mut AppState, events: &[Arc<AccessEvent>]) {
    for e in events {
        update(state, Msg::Event(e.clone()));
    }
}

/// `n` synthetic events as JSONL lines, as the gate's audit writer writes them.
pub fn jsonl_lines(n: u64, start: DateTime<Utc>, per_sec: u64) -> Vec<String> {
    (0..n)
        .map(|i| synthetic_event(i, start, per_sec).to_json_line())
        .collect()
}

/// Parse JSONL lines as the tail reader does and feed each event into the state; returns how
/// many lines did not parse (they become `Msg::CorruptLine`).
pub fn ingest_jsonl<S: AsRef<[u8]>>(state: &mut AppState, lines: &[S]) -> usize {
    let mut corrupt = 0;
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_slice::<AccessEvent>(line.as_ref()) {
            Ok(e) => update(state, Msg::Event(Arc::new(e))),
            Err(e) => {
                corrupt += 1;
                update(
                    state,
                    Msg::CorruptLine {
                        line: i as u64 + 1,
                        error: e.to_string(),
                    },
                );
            }
        }
    }
    corrupt
}

/// This process's resident memory in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Draw one frame of `width`×`height` and return it.
pub fn render(state: &AppState, width: u16, height: u16) -> Buffer {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(never) => match never {},
    };
    let _ = terminal.draw(|f| views::draw(f, state));
    terminal.backend().buffer().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::aggregate::Limits;
    use crate::console::app::{HeaderInfo, ViewId};
    use crate::console::theme::Theme;
    use crossterm::event::{KeyCode, KeyEvent};
    use std::time::Instant;

    fn rss_mib() -> f64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: f64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0.0);
        pages * 4096.0 / 1024.0 / 1024.0
    }

    /// Throughput, retained memory and frame time; run with
    /// `cargo test --lib console::bench -- --ignored --nocapture` (figures in the output).
    #[test]
    #[ignore]
    fn throughput_memory_and_frame_time() {
        let start = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let n = 1_000_000u64;
        for ring in [10_000usize, 1_000_000] {
            let limits = Limits {
                ring_capacity: ring,
                ..Limits::default()
            };
            // Memory: events made one at a time, so only what the state retains stays allocated.
            let rss0 = rss_mib();
            let mut s = AppState::new(Theme::default(), HeaderInfo::default(), limits, start);
            for i in 0..n {
                update(
                    &mut s,
                    Msg::Event(Arc::new(synthetic_event(i, start, 5_000))),
                );
            }
            let rss1 = rss_mib();
            // Throughput: ingest pre-built batches into a fresh state (generation not timed).
            let mut t_state = AppState::new(Theme::default(), HeaderInfo::default(), limits, start);
            let mut ingest_secs = 0.0;
            for chunk in 0..10u64 {
                let batch: Vec<_> = (chunk * n / 10..(chunk + 1) * n / 10)
                    .map(|i| Arc::new(synthetic_event(i, start, 5_000)))
                    .collect();
                let t = Instant::now();
                ingest(&mut t_state, &batch);
                ingest_secs += t.elapsed().as_secs_f64();
            }
            drop(t_state);
            // Like the runner: apply events, draw a 160x45 frame whenever 16 ms have passed.
            // Events are made in chunks (untimed) so the peak memory stays small.
            let mut d_state = AppState::new(Theme::default(), HeaderInfo::default(), limits, start);
            let (mut busy, mut since_draw, mut draws) = (0.0f64, 0.0f64, 0u32);
            for chunk in 0..10u64 {
                let batch: Vec<_> = (chunk * n / 10..(chunk + 1) * n / 10)
                    .map(|i| Arc::new(synthetic_event(i, start, 5_000)))
                    .collect();
                for part in batch.chunks(4096) {
                    let t = Instant::now();
                    ingest(&mut d_state, part);
                    if since_draw >= 0.016 {
                        render(&d_state, 160, 45);
                        since_draw = 0.0;
                        draws += 1;
                    }
                    let dt = t.elapsed().as_secs_f64();
                    busy += dt;
                    since_draw += dt;
                }
            }
            let while_drawing = n as f64 / busy;
            drop(d_state);
            update(&mut s, Msg::Tick(start + Duration::seconds(200)));
            let mut frames = Vec::new();
            for v in ViewId::ALL {
                s.view = v;
                frames.push(format!("{} {:.2}", v.title(), frame_ms(&s)));
            }
            s.view = ViewId::Traffic;
            update(&mut s, Msg::Key(KeyEvent::from(KeyCode::Char('/'))));
            for c in "country:RU deny".chars() {
                update(&mut s, Msg::Key(KeyEvent::from(KeyCode::Char(c))));
            }
            frames.push(format!("Traffic+filter {:.2}", frame_ms(&s)));
            println!(
                "ring {ring}: ingest {:.0} events/s ({while_drawing:.0}/s while drawing, {draws} frames); RSS {rss0:.0} -> {rss1:.0} MiB holding the state after {n} events; 160x45 frame ms: {}",
                n as f64 / ingest_secs,
                frames.join(", ")
            );
            assert_eq!(s.traffic.totals.events, n);
        }
    }

    fn frame_ms(s: &AppState) -> f64 {
        render(s, 160, 45);
        let t = Instant::now();
        for _ in 0..20 {
            render(s, 160, 45);
        }
        t.elapsed().as_secs_f64() * 1000.0 / 20.0
    }
}
