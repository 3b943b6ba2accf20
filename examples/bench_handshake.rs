//! mTLS handshake load for `bench/run`: full handshakes (session resumption disabled) with a
//! client certificate, each followed by one `GET` with `Connection: close` so the server has
//! verified the certificate and decided on the request before a connection counts.
//!
//! Usage:
//! `bench_handshake ADDR SERVER_NAME CA_PEM CERT_PEM KEY_PEM CONCURRENCY SECONDS [HOST]`
//!
//! Prints one JSON line: `{"ok":N,"failed":N,"secs":S,"per_sec":R,"p50_ms":A,"p99_ms":B}`.
//! Every loop is bounded by the duration; it only ever connects to ADDR (loopback in the harness).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 7 {
        bail!(
            "usage: bench_handshake ADDR SERVER_NAME CA_PEM CERT_PEM KEY_PEM CONCURRENCY SECONDS [HOST]"
        );
    }
    let addr: std::net::SocketAddr = args[0].parse().context("ADDR")?;
    let server_name = ServerName::try_from(args[1].clone()).context("SERVER_NAME")?;
    let ca = CertificateDer::from_pem_file(&args[2]).context("CA_PEM")?;
    let chain = CertificateDer::pem_file_iter(&args[3])
        .context("CERT_PEM")?
        .collect::<Result<Vec<_>, _>>()
        .context("CERT_PEM")?;
    let key = PrivateKeyDer::from_pem_file(&args[4]).context("KEY_PEM")?;
    let concurrency: usize = args[5].parse().context("CONCURRENCY")?;
    let secs: f64 = args[6].parse().context("SECONDS")?;
    let host = args.get(7).cloned().unwrap_or_else(|| args[1].clone());

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .context("CA_PEM is not a usable CA certificate")?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("client certificate and key do not match")?;
    // Every connection must be a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (connector, server_name, request) =
                (connector.clone(), server_name.clone(), request.clone());
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let one = tokio::time::timeout(
                        Duration::from_secs(5),
                        one_connection(&connector, addr, server_name.clone(), &request),
                    )
                    .await;
                    match one {
                        Ok(Ok(())) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok(Err(e)) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("bench_handshake: first failure: {e:#}");
                            }
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if all.is_empty() {
                0.0
            } else {
                all[((all.len() - 1) as f64 * p).round() as usize]
            }
        };
        let n = ok.load(Ordering::Relaxed);
        println!(
            "{{\"ok\":{n},\"failed\":{},\"secs\":{elapsed:.3},\"per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
            failed.load(Ordering::Relaxed),
            n as f64 / elapsed,
            pct(0.50),
            pct(0.99)
        );
        Ok(())
    })
}

async fn one_connection(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    name: ServerName<'static>,
    request: &str,
) -> Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    // Read to EOF (Connection: close), at most 64 KiB.
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 64 * 1024 {
                    break;
                }
            }
            // Servers that close without close_notify still answered; judge by the status.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
    }
    if buf.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        let line = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
        bail!("answer was not 200: {line:?}")
    }
}
