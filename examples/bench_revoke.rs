//! Revocation fan-out for `bench/run` case 8: how long after a revocation is written to the
//! shared store does every gate refuse the token?
//!
//! For each of COUNT tokens (taken from the end of TOKENS_FILE, the `client_id secret name`
//! lines `bench_seed` prints): check that every gate allows it, revoke it through the store API
//! (`Store::revoke_token`, what `botgate token revoke` calls), then poll each gate in its own
//! thread every INTERVAL_MS with that token until the gate answers 401 or 403. The clock starts
//! before the revoking call (so its own round trip counts) and stops at the first refusal seen.
//! A gate that still allows the token after 5 s counts as a failure (exit 1).
//!
//! Prints one line: `BENCHJSON {"revocations":N,"p50_ms":…,"p99_ms":…,"max_ms":…,
//! "gate_p99_ms":[…],"interval_ms":…,"failed":N}`, where p50/p99/max are over "every gate
//! refuses" (the slowest gate per revocation). Benchmark use only.
//!
//! Usage: `bench_revoke STORE_URL TOKENS_FILE COUNT INTERVAL_MS GATE_ADDR...` (GATE_ADDR is
//! `127.0.0.1:PORT`, plain HTTP)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use botgate::store::Store;

const GIVE_UP: Duration = Duration::from_secs(5);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, tokens_file, count, interval, gates @ ..] = args.as_slice() else {
        bail!("usage: bench_revoke STORE_URL TOKENS_FILE COUNT INTERVAL_MS GATE_ADDR...");
    };
    ensure!(
        !gates.is_empty(),
        "name at least one gate address (127.0.0.1:PORT)"
    );
    let count: usize = count
        .parse()
        .with_context(|| format!("COUNT must be a number, got {count:?}"))?;
    let interval = Duration::from_millis(
        interval
            .parse()
            .with_context(|| format!("INTERVAL_MS must be a number, got {interval:?}"))?,
    );
    let text = std::fs::read_to_string(tokens_file)
        .with_context(|| format!("cannot read {tokens_file}"))?;
    let tokens: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .collect();
    ensure!(
        tokens.len() >= count,
        "{tokens_file} has {} tokens, {count} asked for",
        tokens.len()
    );
    let store = Store::connect(url).context("cannot connect to the store")?;

    let mut every_gate = Vec::with_capacity(count);
    let mut per_gate: Vec<Vec<f64>> = vec![Vec::with_capacity(count); gates.len()];
    let mut failed = 0usize;
    for (id, secret) in &tokens[tokens.len() - count..] {
        for gate in gates {
            let status = status(gate, id, secret)?;
            ensure!(
                status == 200,
                "gate {gate} answers {status}, not 200, to token {id} before its revocation"
            );
        }
        let start = Instant::now();
        botgate::store::wait(store.revoke_token(id, chrono::Utc::now()))
            .with_context(|| format!("cannot revoke {id}"))?;
        let seen: Vec<Result<Duration, String>> = std::thread::scope(|s| {
            let polls: Vec<_> = gates
                .iter()
                .map(|gate| s.spawn(move || refused_after(gate, id, secret, start, interval)))
                .collect();
            polls
                .into_iter()
                .map(|p| {
                    p.join()
                        .unwrap_or_else(|_| Err("the poller panicked".into()))
                })
                .collect()
        });
        let mut missed = false;
        for (gate, r) in gates.iter().zip(&seen) {
            if let Err(last) = r {
                eprintln!(
                    "bench_revoke: token {id}, revoked at {}: gate {gate} still did not refuse it after {GIVE_UP:?} (last answer: {last})",
                    chrono::Utc::now() - chrono::Duration::from_std(GIVE_UP).unwrap_or_default()
                );
                missed = true;
            }
        }
        if missed {
            failed += 1;
            continue;
        }
        let ms: Vec<f64> = seen
            .iter()
            .map(|d| d.clone().unwrap_or_default().as_secs_f64() * 1e3)
            .collect();
        for (g, v) in ms.iter().enumerate() {
            per_gate[g].push(*v);
        }
        every_gate.push(ms.iter().cloned().fold(0.0, f64::max));
        // Revocations an admin makes are seconds apart; this keeps them from sharing one
        // notification and puts them at different points of the gates' poll cycle.
        std::thread::sleep(Duration::from_millis(37));
    }
    let gate_p99: Vec<String> = per_gate
        .iter_mut()
        .map(|v| format!("{:.2}", percentile(v, 0.99)))
        .collect();
    println!(
        "BENCHJSON {{\"revocations\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"gate_p99_ms\":[{}],\"interval_ms\":{},\"failed\":{failed}}}",
        every_gate.len(),
        percentile(&mut every_gate.clone(), 0.50),
        percentile(&mut every_gate.clone(), 0.99),
        percentile(&mut every_gate, 1.0),
        gate_p99.join(","),
        interval.as_millis(),
    );
    if failed > 0 {
        bail!("{failed} revocation(s) were still allowed by a gate after {GIVE_UP:?}");
    }
    Ok(())
}

/// Poll `gate` until it refuses the token: the time since `start` when it first did, or the
/// last answer it gave.
fn refused_after(
    gate: &str,
    id: &str,
    secret: &str,
    start: Instant,
    interval: Duration,
) -> Result<Duration, String> {
    let mut last = String::new();
    while start.elapsed() < GIVE_UP {
        match status(gate, id, secret) {
            Ok(401 | 403) => return Ok(start.elapsed()),
            Ok(code) => last = format!("HTTP {code}"),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(interval);
    }
    Err(last)
}

/// One GET on a fresh connection; the response's status code.
fn status(gate: &str, id: &str, secret: &str) -> Result<u16> {
    let mut conn = TcpStream::connect(gate).with_context(|| format!("cannot connect to {gate}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        conn,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCF-Access-Client-Id: {id}\r\nCF-Access-Client-Secret: {secret}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head)
        .with_context(|| format!("no status line from {gate}"))?;
    let code = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{gate} answered something that is not HTTP/1.1"))?;
    Ok(code)
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() as f64) * q).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
