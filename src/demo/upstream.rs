//! The demo's stub upstream: a hyper server on 127.0.0.1:0 answering every app with a small
//! JSON body that echoes the identity headers the gate added, after a little latency jitter so
//! the console's latency columns have something to show.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Headers the gate adds that the upstream echoes back.
pub const ECHOED_HEADERS: &[&str] = &[
    "x-botgate-identity",
    "x-botgate-connection",
    "x-botgate-token-id",
    "x-botgate-cert-sha256",
    "x-botgate-ray-id",
    "x-forwarded-for",
];

/// A running stub upstream. `stop` (or drop) closes the listener and every connection.
#[derive(Debug)]
pub struct StubUpstream {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl StubUpstream {
    /// Bind 127.0.0.1:0 and serve; each answer waits a uniform `latency` range first.
    pub async fn start(latency: std::ops::Range<Duration>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, latency, rx));
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// The URL the policy's `upstream` should point at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting and drop every open connection.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn serve(
    listener: TcpListener,
    latency: std::ops::Range<Duration>,
    shutdown: watch::Receiver<bool>,
) {
    serve_http(listener, "demo upstream", shutdown, move |req| {
        answer(req, latency.clone())
    })
    .await;
}

/// Serve HTTP/1 and HTTP/2 on `listener` with `answer` until `shutdown` changes (or its
/// sender is dropped); the connections still open are dropped then. Shared by the demo's
/// loopback servers (stub upstream, local SIEM).
pub(super) async fn serve_http<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    mut shutdown: watch::Receiver<bool>,
    answer: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    // Dropping the set at the end aborts the connection tasks still open.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let answer = answer.clone();
                    conns.spawn(async move {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service_fn(answer))
                            .await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "{what} cannot accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    latency: std::ops::Range<Duration>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !latency.is_empty() {
        let wait = rand::rng().random_range(latency);
        tokio::time::sleep(wait).await;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let host = header(HOST.as_str()).unwrap_or_default();
    let path = req.uri().path().to_string();
    let body = if path == "/healthz" {
        serde_json::json!({ "status": "ok" })
    } else {
        let mut echoed = serde_json::Map::new();
        for name in ECHOED_HEADERS {
            if let Some(v) = header(name) {
                echoed.insert((*name).to_string(), serde_json::Value::String(v));
            }
        }
        serde_json::json!({
            "ok": true,
            "app": crate::policy::strip_port(&host),
            "method": req.method().as_str(),
            "path": path,
            "received": echoed,
        })
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echoes_identity_headers_as_json() {
        let up = StubUpstream::start(Duration::ZERO..Duration::from_millis(2))
            .await
            .unwrap();
        let stream = tokio::net::TcpStream::connect(up.addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/v1/deploy")
            .header("host", "api.demo.local")
            .header("x-botgate-identity", "token:ci-deploy-prod")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["app"], "api.demo.local");
        assert_eq!(v["path"], "/v1/deploy");
        assert_eq!(v["received"]["x-botgate-identity"], "token:ci-deploy-prod");
        up.stop().await;
    }
}
