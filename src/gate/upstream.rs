//! A sticky upstream connection per downstream HTTP/1 connection, driven by the downstream
//! connection's own task. Through the shared pool every request hands its work to the pooled
//! connection's task (often on the other worker thread) and back, and spawns a task to return the
//! connection to the pool; here the downstream task writes the request upstream and reads the
//! answer itself. The pool stays the fallback: HTTP/2 streams (served on tasks of their own), a
//! sticky connection that is busy, and one that cannot be opened or is found closed. An
//! `https://` upstream's sticky connection is TLS with its app's profile; a handshake the
//! upstream fails is the request's answer (not retried through the pool, which would fail
//! the same way).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::upstream_tls::UpstreamTls;

/// How long opening an upstream connection may take (as for the pool's connector).
pub const CONNECT_TIMEOUT: Duration = crate::upstream_tls::CONNECT_TIMEOUT;

type ConnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The per-downstream-connection slot: at most one upstream connection, to one upstream.
#[derive(Default)]
pub struct StickyUpstream {
    slot: Mutex<Slot>,
}

impl std::fmt::Debug for StickyUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickyUpstream").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Slot {
    live: Option<Live>,
    /// The connection itself; polled by `poll_connection` in the downstream task.
    conn: Option<ConnFuture>,
}

impl Slot {
    fn clear(&mut self) {
        self.live = None;
        self.conn = None;
    }
}

/// An open upstream connection and what requests on it need.
struct Live {
    /// The app's `upstream` string this connection was opened for.
    upstream: String,
    /// The TLS profile it was opened with: a request of another profile (another app, or the
    /// same app after a reload) does not use it.
    tls: Option<Arc<UpstreamTls>>,
    /// The upstream's path prefix (`/base` of `http://host:port/base`), usually empty.
    base: String,
    /// `Host` for requests that came without one: the upstream's authority.
    host: Option<HeaderValue>,
    sender: http1::SendRequest<Incoming>,
}

impl Live {
    /// What the pooled client does to an HTTP/1 request: `Host` from the upstream when the
    /// client sent none, and the URI in origin form (`/base/path?query`).
    fn adapt(&self, req: &mut Request<Incoming>) {
        if let Some(host) = &self.host
            && !req.headers().contains_key(HOST)
        {
            req.headers_mut().insert(HOST, host.clone());
        }
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let origin = if self.base.is_empty() {
            match req.uri().path_and_query() {
                Some(pq) if pq.as_str() != "/" => {
                    let mut parts = hyper::http::uri::Parts::default();
                    parts.path_and_query = Some(pq.clone());
                    Uri::from_parts(parts).unwrap_or_default()
                }
                _ => Uri::default(),
            }
        } else {
            format!("{}{pq}", self.base).parse().unwrap_or_default()
        };
        *req.uri_mut() = origin;
    }
}

/// The sticky connection did not take the request (busy, closed, or could not be opened); the
/// request comes back unchanged for the pool.
pub struct NotTaken(pub Request<Incoming>);

/// Why a request the sticky connection took got no response.
#[derive(Debug)]
pub enum StickyError {
    /// The exchange failed (hyper's error; a TLS alert during it is inside).
    Http(hyper::Error),
    /// The TLS handshake with the upstream failed (the rustls error is inside).
    Handshake(std::io::Error),
}

/// Why no sticky connection could be opened.
enum OpenError {
    /// No connection (unreachable, timed out): the pool tries.
    NotOpened,
    /// Connected, but the TLS handshake failed.
    Handshake(std::io::Error),
}

impl StickyUpstream {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Nothing panics while the lock is held; a poisoned slot is still consistent.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drive the upstream connection, if any. Called on every poll of the downstream
    /// connection, after it (so a connection a request handler just opened starts at once).
    pub fn poll_connection(&self, cx: &mut Context<'_>) {
        let mut slot = self.lock();
        if let Some(conn) = slot.conn.as_mut()
            && conn.as_mut().poll(cx).is_ready()
        {
            slot.clear();
        }
    }

    /// Send `req` (its URI as the client sent it) to `upstream` on the sticky connection,
    /// opening one (over TLS with `tls`, for an `https://` upstream) when there is none or it
    /// is closed.
    pub async fn send(
        &self,
        upstream: &str,
        tls: Option<&Arc<UpstreamTls>>,
        req: Request<Incoming>,
    ) -> Result<Result<Response<Incoming>, StickyError>, NotTaken> {
        let mut req = req;
        let original = req.uri().clone();
        let sent = {
            let mut slot = self.lock();
            match &mut slot.live {
                Some(live)
                    if live.upstream == upstream
                        && same_profile(live.tls.as_ref(), tls)
                        && !live.sender.is_closed() =>
                {
                    if !live.sender.is_ready() {
                        // Still busy with an earlier answer: not this request's to wait for.
                        return Err(NotTaken(req));
                    }
                    live.adapt(&mut req);
                    Ok(live.sender.try_send_request(req))
                }
                _ => {
                    slot.clear();
                    Err(req)
                }
            }
        };
        let sent = match sent {
            Ok(sent) => sent,
            Err(mut req) => {
                let (live, conn) = match open(upstream, tls).await {
                    Ok(opened) => opened,
                    Err(OpenError::NotOpened) => return Err(NotTaken(req)),
                    Err(OpenError::Handshake(e)) => return Ok(Err(StickyError::Handshake(e))),
                };
                let mut slot = self.lock();
                let live = slot.live.insert(live);
                live.adapt(&mut req);
                let sent = live.sender.try_send_request(req);
                slot.conn = Some(conn);
                sent
            }
        };
        match sent.await {
            Ok(resp) => Ok(Ok(resp)),
            Err(mut e) => match e.take_message() {
                // Not written: the connection is gone. Forget it; the pool takes the request.
                Some(mut req) => {
                    self.lock().clear();
                    *req.uri_mut() = original;
                    Err(NotTaken(req))
                }
                None => Ok(Err(StickyError::Http(e.into_error()))),
            },
        }
    }
}

/// Whether a connection opened with profile `a` may carry a request of profile `b`: the same
/// profile, or both plain.
fn same_profile(a: Option<&Arc<UpstreamTls>>, b: Option<&Arc<UpstreamTls>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// Connect to `upstream` (`http(s)://host[:port][/base]`), with TLS when `tls` is given.
async fn open(
    upstream: &str,
    tls: Option<&Arc<UpstreamTls>>,
) -> Result<(Live, ConnFuture), OpenError> {
    let uri: Uri = upstream.parse().map_err(|_| OpenError::NotOpened)?;
    let auth = uri.authority().ok_or(OpenError::NotOpened)?;
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    let default_port = if tls.is_some() { 443 } else { 80 };
    let port = auth.port_u16().unwrap_or(default_port);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(upstream, error = %e, "cannot open a sticky upstream connection");
            return Err(OpenError::NotOpened);
        }
        Err(_) => return Err(OpenError::NotOpened),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = match tls {
        None => handshake(stream).await?,
        Some(profile) => {
            let stream = profile
                .handshake(host, stream)
                .await
                .map_err(OpenError::Handshake)?;
            handshake(stream).await?
        }
    };
    let host = match auth.port_u16() {
        Some(p) if p != default_port => HeaderValue::from_str(&format!("{}:{p}", auth.host())),
        _ => HeaderValue::from_str(auth.host()),
    };
    let live = Live {
        upstream: upstream.to_string(),
        tls: tls.cloned(),
        base: uri.path().trim_end_matches('/').to_string(),
        host: host.ok(),
        sender,
    };
    Ok((live, conn))
}

/// The HTTP/1 client handshake over `io` (plain TCP or TLS), its connection boxed for the slot.
async fn handshake<T>(io: T) -> Result<(http1::SendRequest<Incoming>, ConnFuture), OpenError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| OpenError::NotOpened)?;
    let conn: ConnFuture = Box::pin(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "sticky upstream connection ended with an error");
        }
    });
    Ok((sender, conn))
}

/// Poll the downstream connection `fut`, then the sticky upstream connection, in one task.
pub fn poll_both<F: Future + ?Sized>(
    fut: Pin<&mut F>,
    sticky: &StickyUpstream,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    if let Poll::Ready(out) = fut.poll(cx) {
        return Poll::Ready(out);
    }
    sticky.poll_connection(cx);
    Poll::Pending
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
