//! The demo's CI platform: a local OIDC issuer shaped like GitHub Actions' (discovery and a
//! JWKS on loopback, ES256) and the ID token it gives the deploy job, written to a file and
//! renewed every minute (each job run gets a fresh five-minute token; nothing is stored).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

use crate::assertion::{Alg, SigningKey};
use crate::clock::SharedClock;

/// The audience the demo's job requests (the demo policy's `audiences`).
pub const AUDIENCE: &str = "https://api.demo.local";
/// Where the deploy job's current ID token is (under the credentials directory).
pub const TOKEN_FILE: &str = "ci-oidc-deploy.jwt";

/// The running issuer.
pub struct DemoIssuer {
    pub addr: SocketAddr,
    pub token_file: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DemoIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoIssuer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DemoIssuer {
    /// Serve the issuer on 127.0.0.1 and keep a token for the deploy job in `creds_dir`.
    pub async fn start(creds_dir: &Path, clock: SharedClock) -> std::io::Result<Self> {
        let generated = crate::assertion::keys::generate(Alg::Es256, clock.now())
            .map_err(std::io::Error::other)?;
        let key = Arc::new(
            SigningKey::from_pem(
                generated.kid.clone().into(),
                Alg::Es256,
                &generated.private_pem,
            )
            .map_err(std::io::Error::other)?,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let jwks = serde_json::json!({ "keys": [generated.public_jwk] }).to_string();
        let discovery = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks"),
            "id_token_signing_alg_values_supported": ["ES256"],
        })
        .to_string();
        let serve = tokio::spawn(serve(listener, discovery, jwks));
        std::fs::create_dir_all(creds_dir)?;
        let token_file = creds_dir.join(TOKEN_FILE);
        write_token(&token_file, &key, &issuer, &clock)?;
        let (path, renew_key) = (token_file.clone(), key.clone());
        let renew = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = write_token(&path, &renew_key, &issuer, &clock) {
                    tracing::debug!(error = %e, "the demo issuer cannot renew the job's token");
                }
            }
        });
        Ok(Self {
            addr,
            token_file,
            tasks: vec![serve, renew],
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The deploy job's claims, as GitHub Actions words them.
fn write_token(
    path: &Path,
    key: &SigningKey,
    issuer: &str,
    clock: &SharedClock,
) -> std::io::Result<()> {
    let now = clock.now().timestamp();
    let claims = serde_json::json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "repo:demo/api:ref:refs/heads/main",
        "repository": "demo/api",
        "repository_owner": "demo",
        "ref": "refs/heads/main",
        "workflow": "deploy",
        "job_workflow_ref": "demo/api/.github/workflows/deploy.yml@refs/heads/main",
        "run_id": (now / 60).to_string(),
        "actor": "demo-bot",
        "event_name": "push",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    });
    let token = crate::assertion::jwt::sign(key, &claims).map_err(std::io::Error::other)?;
    crate::atomic_file::write(path, token.as_bytes())
}

async fn serve(listener: tokio::net::TcpListener, discovery: String, jwks: String) {
    let (discovery, jwks) = (Arc::new(discovery), Arc::new(jwks));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (discovery, jwks) = (discovery.clone(), jwks.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = match req.uri().path() {
                    "/.well-known/openid-configuration" => Some(discovery.clone()),
                    "/.well-known/jwks" => Some(jwks.clone()),
                    _ => None,
                };
                async move {
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    match body {
                        Some(b) => {
                            *resp.body_mut() = Full::new(Bytes::from(b.as_bytes().to_vec()));
                            resp.headers_mut().insert(
                                hyper::header::CACHE_CONTROL,
                                hyper::header::HeaderValue::from_static("max-age=3600"),
                            );
                        }
                        None => *resp.status_mut() = StatusCode::NOT_FOUND,
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
