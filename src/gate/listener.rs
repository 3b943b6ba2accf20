//! Accept loops: plain HTTP (and, via `tls`, HTTPS) connections served by hyper with keep-alive,
//! a header read timeout (slowloris), a maximum head size and header count. Requests hyper
//! refuses while parsing are audited when the connection ends (see `parse_reject`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::handler::{ConnInfo, Downstream, GateState, handle};
use super::parse_reject;
use super::upstream::poll_both;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// The most header fields in one request head (hyper answers 431 beyond).
    pub max_headers: usize,
}

/// hyper's own header count limit: at this value its parser keeps the headers on the stack.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// The hyper connection builder with our limits (HTTP/1.1 and HTTP/2).
pub fn builder(limits: ConnLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // hyper refuses buffers under 8 KiB; heads larger than the buffer get 431.
        .max_buf_size(limits.max_header_bytes.max(8192));
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        // Any other value puts the parser's header array on the heap, per request.
        b.http1().max_headers(limits.max_headers);
    }
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.max(8192) as u32);
    b
}

/// Serve one accepted connection until it closes or shutdown is signalled.
pub async fn serve_connection<S>(
    io: S,
    state: Arc<GateState>,
    conn: ConnInfo,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let downstream = Arc::new(Downstream {
        info: conn,
        upstream: Default::default(),
    });
    let sticky = downstream.clone();
    let gate = state.clone();
    let svc = service_fn(move |req| handle(state.clone(), downstream.clone(), req));
    let b = builder(limits);
    let fut = b.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(fut);
    // The sticky upstream connection is driven here, in this task, beside the downstream one.
    let res = tokio::select! {
        res = std::future::poll_fn(|cx| poll_both(fut.as_mut(), &sticky.upstream, cx)) => res,
        _ = shutdown.changed() => {
            fut.as_mut().graceful_shutdown();
            let drain = std::future::poll_fn(|cx| poll_both(fut.as_mut(), &sticky.upstream, cx));
            match tokio::time::timeout(Duration::from_secs(5), drain).await {
                Ok(res) => res,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
        // hyper has answered the request it could not parse; it still gets its audit event.
        if let Some(reason) = parse_reject::refusal(&*e) {
            parse_reject::audit(&gate, &sticky.info, reason, &*e);
        }
    }
}

/// Accept plain HTTP connections until shutdown.
pub async fn accept_plain(
    listener: TcpListener,
    state: Arc<GateState>,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = ConnInfo { peer, tls: false, cert: None, cert_refused: None };
                    tokio::spawn(serve_connection(stream, state.clone(), conn, limits, shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Bind a listener, with the address in the error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
