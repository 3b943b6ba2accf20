//! Per-core accept loops (`GateOptions::workers > 0`): one single-threaded tokio runtime per
//! worker thread, each with its own `SO_REUSEPORT` listener sockets (plain and TLS) on the same
//! address, so the kernel spreads connections over the workers and a connection lives on one
//! thread from accept to close (no work stealing, no cross-thread wake-ups). Shutdown stops the
//! accept loops, lets every connection of the worker drain (see `serve_connection`), then ends
//! the thread.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::handler::GateState;
use super::listener::{ConnLimits, accept_plain};
use super::tls::{TlsConfigs, accept_tls};

/// What the workers serve.
pub(super) struct WorkerSetup {
    pub count: usize,
    pub listen: SocketAddr,
    pub tls: Option<(SocketAddr, Arc<ArcSwap<TlsConfigs>>)>,
    pub state: Arc<GateState>,
    pub limits: ConnLimits,
}

/// Bound addresses (plain, TLS) and one task per worker that ends when its thread has finished.
pub(super) type Started = (SocketAddr, Option<SocketAddr>, Vec<JoinHandle<()>>);

type Bound = std::io::Result<(SocketAddr, Option<SocketAddr>)>;

/// Start the workers one after the other: the first binds the configured addresses (port 0
/// becomes a real port), the others bind the same ports. On error the workers already started
/// stop when the caller drops the shutdown sender.
pub(super) async fn start(
    setup: WorkerSetup,
    shutdown: &watch::Receiver<bool>,
) -> std::io::Result<Started> {
    let mut addr = setup.listen;
    let mut tls_addr = setup.tls.as_ref().map(|(a, _)| *a);
    // SO_REUSEPORT would let us share a port another botgate (same user) already listens on;
    // a plain bind first makes that the usual "address in use" error.
    for a in std::iter::once(addr).chain(tls_addr) {
        if a.port() != 0 {
            drop(std::net::TcpListener::bind(a).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"))
            })?);
        }
    }
    let mut tasks = Vec::with_capacity(setup.count);
    for i in 0..setup.count.max(1) {
        let (ready_tx, ready_rx) = oneshot::channel::<Bound>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let tls = tls_addr.zip(setup.tls.as_ref().map(|(_, c)| c.clone()));
        let (state, limits, shutdown) = (setup.state.clone(), setup.limits, shutdown.clone());
        std::thread::Builder::new()
            .name(format!("botgate-gate-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(worker(addr, tls, state, limits, shutdown, ready_tx));
                drop(done_tx);
            })?;
        let bound = ready_rx.await.unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "a gate worker thread ended before listening",
            ))
        })?;
        (addr, tls_addr) = bound;
        tasks.push(tokio::spawn(async move {
            let _ = done_rx.await;
        }));
    }
    Ok((addr, tls_addr, tasks))
}

/// One worker: bind, report the bound addresses, accept until shutdown, drain its connections.
async fn worker(
    addr: SocketAddr,
    tls: Option<(SocketAddr, Arc<ArcSwap<TlsConfigs>>)>,
    state: Arc<GateState>,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
    ready: oneshot::Sender<Bound>,
) {
    let bound = (|| {
        let plain = bind_reuseport(addr)?;
        let tls = match tls {
            Some((a, configs)) => Some((bind_reuseport(a)?, configs)),
            None => None,
        };
        Ok::<_, std::io::Error>((plain, tls))
    })();
    let (plain, tls) = match bound {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let addrs = plain.local_addr().and_then(|a| {
        let t = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        Ok((a, t))
    });
    let failed = addrs.is_err();
    if ready.send(addrs).is_err() || failed {
        return;
    }
    // Every connection task holds a clone of `local_rx`: `closed()` below waits for all of them.
    let (local_tx, local_rx) = watch::channel(false);
    let mut loops = vec![tokio::spawn(accept_plain(
        plain,
        state.clone(),
        limits,
        local_rx.clone(),
    ))];
    if let Some((l, configs)) = tls {
        loops.push(tokio::spawn(accept_tls(
            l,
            state,
            configs,
            limits,
            local_rx.clone(),
        )));
    }
    drop(local_rx);
    // A dropped sender (start failed, or the gate was dropped) also means stop.
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    let _ = local_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Connections drain for at most 5 s each (`serve_connection`).
    local_tx.closed().await;
}

/// A listener with `SO_REUSEPORT`, so every worker can bind the same address.
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let bind = || {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    bind().map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
