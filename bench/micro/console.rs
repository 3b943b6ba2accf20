//! Console benchmarks (issue 7): ingest (parse + aggregate JSONL events per second, alone and
//! with a 160×45 frame drawn every 8,192 events, i.e. 60 frames/s at ~500,000 events/s), frame
//! render time at 160×45 with 1 million events retained, and resident memory after 1 million
//! events (default ring and a 1 M ring; measured in a child process so other benches' heap does
//! not count). All through `botgate::console::bench`, the same helpers the `#[ignore]` test uses.

use std::sync::{Arc, OnceLock};

use botgate::audit::AccessEvent;
use botgate::console::aggregate::Limits;
use botgate::console::bench;
use botgate::console::theme::Theme;
use botgate::console::{AppState, HeaderInfo, Msg, ViewId, update};
use chrono::{DateTime, Duration, Utc};
use divan::counter::ItemsCount;
use divan::{Bencher, black_box};

/// Events per timed batch.
const BATCH: u64 = 8_192;
/// Synthetic traffic rate (events per second of event time).
const PER_SEC: u64 = 5_000;
const MILLION: u64 = 1_000_000;
/// Set in the child process that measures memory: the ring capacity to use.
const RSS_ENV: &str = "BOTGATE_BENCH_CONSOLE_RSS";

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn state(ring: usize) -> AppState {
    let limits = Limits {
        ring_capacity: ring,
        ..Limits::default()
    };
    let mut s = AppState::new(Theme::default(), HeaderInfo::default(), limits, start());
    update(&mut s, Msg::Resize(160, 45));
    s
}

/// A default-ring state already holding 100,000 events (steady state: the ring evicts).
fn warm_state() -> AppState {
    let mut s = state(Limits::default().ring_capacity);
    for i in 0..100_000 {
        update(
            &mut s,
            Msg::Event(Arc::new(bench::synthetic_event(i, start(), PER_SEC))),
        );
    }
    s
}

/// Parse + aggregate: JSONL lines to events in the state.
#[divan::bench]
fn ingest_jsonl(bencher: Bencher) {
    let lines = bench::jsonl_lines(BATCH, start(), PER_SEC);
    let mut s = warm_state();
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| black_box(bench::ingest_jsonl(&mut s, &lines)));
}

/// Aggregate only (events already parsed, as from the in-process bus).
#[divan::bench]
fn ingest_parsed(bencher: Bencher) {
    let events: Vec<Arc<AccessEvent>> = bench::synthetic_events(BATCH, start(), PER_SEC);
    let mut s = warm_state();
    bencher
        .counter(ItemsCount::new(BATCH))
        .bench_local(|| bench::ingest(&mut s, &events));
}

/// Parse + aggregate 8,192 events, then draw one 160×45 Traffic frame: the runner's loop at
/// 60 frames/s and ~500,000 events/s. The items/s figure is the ingest rate while drawing.
#[divan::bench]
fn ingest_jsonl_while_drawing(bencher: Bencher) {
    let lines = bench::jsonl_lines(BATCH, start(), PER_SEC);
    let mut s = warm_state();
    update(&mut s, Msg::Tick(start() + Duration::seconds(20)));
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        bench::ingest_jsonl(&mut s, &lines);
        black_box(bench::render(&s, 160, 45));
    });
}

/// A state holding 1 million events in a 1 M ring, built once for the frame benches.
fn million() -> &'static AppState {
    static S: OnceLock<AppState> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = state(MILLION as usize);
        for i in 0..MILLION {
            update(
                &mut s,
                Msg::Event(Arc::new(bench::synthetic_event(i, start(), PER_SEC))),
            );
        }
        update(
            &mut s,
            Msg::Tick(start() + Duration::seconds((MILLION / PER_SEC) as i64)),
        );
        s
    })
}

/// One 160×45 frame with 1 million events retained, per view (`+filter`: `deny country:RU`,
/// which matches about 1 in 40 events, set with the `:filter` command).
#[divan::bench(args = ["traffic", "log", "alerts", "traffic+filter", "log+filter"])]
fn frame_160x45_1m_retained(bencher: Bencher, view: &str) {
    let mut s = million().clone();
    let (name, filtered) = match view.split_once('+') {
        Some((n, _)) => (n, true),
        None => (view, false),
    };
    s.run_command(name);
    if filtered {
        s.run_command("filter deny country:RU");
    }
    assert_eq!(s.traffic.totals.events, MILLION);
    let expected = match name {
        "log" => ViewId::Log,
        "alerts" => ViewId::Alerts,
        _ => ViewId::Traffic,
    };
    assert_eq!(s.view, expected);
    bencher.bench_local(|| black_box(bench::render(&s, 160, 45)));
}

/// Resident memory after 1 million events, printed as `console RSS …` lines (the timing of
/// this bench is the child process's run and means nothing).
#[divan::bench(sample_count = 1, sample_size = 1)]
fn memory_after_1m_events() {
    for ring in [Limits::default().ring_capacity, MILLION as usize] {
        let out = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe)
                .env(RSS_ENV, ring.to_string())
                .output()
        });
        match out {
            Ok(o) => eprint!("{}", String::from_utf8_lossy(&o.stdout)),
            Err(e) => eprintln!("console RSS: cannot run the probe: {e}"),
        }
    }
}

/// In the child process (`BOTGATE_BENCH_CONSOLE_RSS=RING` set): build a state of that ring
/// size from 1 million events made one at a time, print its resident memory, and say so, so
/// `main` returns without running the benches.
pub fn rss_probe() -> bool {
    let Some(ring) = std::env::var(RSS_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return false;
    };
    let before = bench::rss_bytes();
    let mut s = state(ring);
    for i in 0..MILLION {
        update(
            &mut s,
            Msg::Event(Arc::new(bench::synthetic_event(i, start(), PER_SEC))),
        );
    }
    let after = bench::rss_bytes();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "console RSS after {MILLION} events, ring {ring}: {:.0} MiB (process {:.0} MiB before the state, {} events kept)",
        mib(after),
        mib(before),
        s.traffic.ring.len()
    );
    true
}
