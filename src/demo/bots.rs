//! Simulated bots: each makes real HTTP(S) requests through the gate with reqwest, from its own
//! loopback source addresses (so the gate's country comes from the geo table), with its own user
//! agents, credentials (read from credential files) and schedule. Counts are kept per bot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderValue, USER_AGENT};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::credentials::{CredentialWatch, LoadedCredential};
pub use super::schedule::Schedule;
use crate::credential::{ClientId, ClientSecret};

/// Header names of the service-token contract.
const CLIENT_ID_HEADER: &str = "cf-access-client-id";
const CLIENT_SECRET_HEADER: &str = "cf-access-client-secret";

/// One simulated client.
#[derive(Debug, Clone)]
pub struct BotSpec {
    /// Shown in summaries, e.g. `ci-deploy-prod runner`.
    pub name: String,
    /// The app hostname it calls (Host header, and SNI over HTTPS).
    pub host: String,
    /// Requests it cycles through.
    pub requests: Vec<(Method, String)>,
    /// Source addresses it cycles through (a shared token uses many).
    pub sources: Vec<IpAddr>,
    /// User agents it cycles through.
    pub user_agents: Vec<String>,
    pub auth: BotAuth,
    pub schedule: Schedule,
}

/// How a bot authenticates.
#[derive(Debug, Clone)]
pub enum BotAuth {
    /// No credentials at all (scanners, the load balancer's health check).
    Anonymous,
    /// A service token from a credential file; `reread = false` never picks up a new one.
    TokenFile { path: PathBuf, reread: bool },
    /// A real client id with a fresh random secret each time (credential stuffing).
    GuessedSecret { client_id: String },
    /// A client certificate from a credential file, over HTTPS (needs `GateEndpoints::tls`).
    CertFile { path: PathBuf, reread: bool },
    /// A CI job's OIDC ID token (`Authorization: Bearer`), read from its file for each request
    /// (the platform renews it; no secret is stored anywhere).
    OidcTokenFile { path: PathBuf },
}

/// Where the gate listens.
#[derive(Debug, Clone)]
pub struct GateEndpoints {
    /// The plain-HTTP listener.
    pub plain: SocketAddr,
    /// The HTTPS listener and the CA (PEM) that issued its server certificate (mTLS bots only).
    pub tls: Option<TlsEndpoint>,
}

/// The gate's HTTPS listener as a client sees it.
#[derive(Debug, Clone)]
pub struct TlsEndpoint {
    pub addr: SocketAddr,
    pub server_ca_pem: Vec<u8>,
}

/// Fleet-wide knobs.
#[derive(Debug, Clone, Copy)]
pub struct FleetOptions {
    /// Multiplies every bot's rate; `f64::INFINITY` sends as fast as `max_in_flight` allows.
    pub rate_multiplier: f64,
    /// Concurrent requests per bot (back-pressure when the gate is slower than the schedule).
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            rate_multiplier: 1.0,
            max_in_flight: 64,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Live per-bot counters.
#[derive(Debug, Default)]
pub struct BotCounters {
    pub name: String,
    /// Requests sent.
    pub sent: AtomicU64,
    /// 2xx/3xx answers.
    pub ok: AtomicU64,
    /// 4xx answers (refused by the gate).
    pub denied: AtomicU64,
    /// 5xx answers and transport errors.
    pub failed: AtomicU64,
}

/// A copy of one bot's counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BotCount {
    pub name: String,
    pub sent: u64,
    pub ok: u64,
    pub denied: u64,
    pub failed: u64,
}

impl BotCounters {
    pub fn snapshot(&self) -> BotCount {
        BotCount {
            name: self.name.clone(),
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A bot cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("bot {bot:?}: cannot build its HTTP client: {source}")]
    Client { bot: String, source: reqwest::Error },
    #[error("bot {bot:?}: {message}")]
    Spec { bot: String, message: String },
}

/// The running bots. `stop` waits for in-flight requests (up to 5 s per bot).
#[derive(Debug)]
pub struct BotFleet {
    pub counters: Vec<Arc<BotCounters>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl BotFleet {
    /// Start every bot. Cert bots need `endpoints.tls`; without it they are refused here, so
    /// leave them out of `specs` when mTLS is not set up.
    pub fn spawn(
        specs: Vec<BotSpec>,
        endpoints: &GateEndpoints,
        opts: FleetOptions,
    ) -> Result<Self, BotError> {
        let (stop, stop_rx) = watch::channel(false);
        let mut bots = Vec::with_capacity(specs.len());
        for spec in specs {
            bots.push(Bot::new(spec, endpoints, opts)?);
        }
        let mut tasks = JoinSet::new();
        let counters = bots.iter().map(|b| b.counters.clone()).collect();
        for bot in bots {
            tasks.spawn(bot.run(opts, stop_rx.clone()));
        }
        Ok(Self {
            counters,
            stop,
            tasks,
        })
    }

    /// Copies of every bot's counters, in roster order.
    pub fn counts(&self) -> Vec<BotCount> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }

    /// Stop every bot and wait for its in-flight requests.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A bot's runtime state (owned by its task).
struct Bot {
    spec: BotSpec,
    counters: Arc<BotCounters>,
    /// Plain-HTTP clients, one per source address.
    plain: HashMap<IpAddr, reqwest::Client>,
    plain_base: String,
    /// HTTPS: the listener, trusted CA, and clients per source built for a credential generation.
    tls: Option<(SocketAddr, reqwest::Certificate)>,
    tls_clients: HashMap<IpAddr, (u64, reqwest::Client)>,
    watch: Option<CredentialWatch>,
    user_agents: Vec<HeaderValue>,
    opts: FleetOptions,
}

impl Bot {
    fn new(spec: BotSpec, endpoints: &GateEndpoints, opts: FleetOptions) -> Result<Self, BotError> {
        let err = |message: &str| BotError::Spec {
            bot: spec.name.clone(),
            message: message.to_string(),
        };
        if spec.sources.is_empty() || spec.requests.is_empty() || spec.user_agents.is_empty() {
            return Err(err("needs at least one source, request and user agent"));
        }
        let user_agents = spec
            .user_agents
            .iter()
            .map(|ua| {
                HeaderValue::from_str(ua).map_err(|_| err("user agent is not a header value"))
            })
            .collect::<Result<_, _>>()?;
        let (watch, tls) = match &spec.auth {
            BotAuth::TokenFile { path, reread } => {
                (Some(CredentialWatch::new(path.clone(), *reread)), None)
            }
            BotAuth::CertFile { path, reread } => {
                let tls = endpoints
                    .tls
                    .as_ref()
                    .ok_or_else(|| err("a certificate bot needs the gate's TLS listener"))?;
                let ca = reqwest::Certificate::from_pem(&tls.server_ca_pem)
                    .map_err(|_| err("the gate's server CA is not PEM"))?;
                (
                    Some(CredentialWatch::new(path.clone(), *reread)),
                    Some((tls.addr, ca)),
                )
            }
            BotAuth::GuessedSecret { client_id } => {
                ClientId::parse(client_id).map_err(|e| err(&e.to_string()))?;
                (None, None)
            }
            BotAuth::Anonymous | BotAuth::OidcTokenFile { .. } => (None, None),
        };
        // Read the credential now: a straggler's copy is the one it had when it started.
        let mut watch = watch;
        if let Some(w) = watch.as_mut() {
            let _ = w.current();
        }
        let mut plain = HashMap::new();
        if tls.is_none() {
            for ip in &spec.sources {
                let client = base_client(*ip, opts)
                    .build()
                    .map_err(|source| BotError::Client {
                        bot: spec.name.clone(),
                        source,
                    })?;
                plain.insert(*ip, client);
            }
        }
        Ok(Self {
            counters: Arc::new(BotCounters {
                name: spec.name.clone(),
                ..Default::default()
            }),
            plain,
            plain_base: format!("http://{}", endpoints.plain),
            tls,
            tls_clients: HashMap::new(),
            watch,
            user_agents,
            opts,
            spec,
        })
    }

    async fn run(mut self, opts: FleetOptions, mut stop: watch::Receiver<bool>) {
        let started = Instant::now();
        let mut next_at = started + self.spec.schedule.first_delay();
        let permits = Arc::new(Semaphore::new(opts.max_in_flight.max(1)));
        let mut in_flight = JoinSet::new();
        let mut n: usize = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            if next_at > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_at) => {}
                    _ = stop.changed() => break,
                }
            }
            while in_flight.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            if let Some(req) = self.prepare(n) {
                let counters = self.counters.clone();
                in_flight.spawn(async move {
                    let _permit = permit;
                    send(req, &counters).await;
                });
                n = n.wrapping_add(1);
            }
            let now = Instant::now();
            next_at += self
                .spec
                .schedule
                .next_delay(now - started, opts.rate_multiplier);
            // Never try to catch up on a backlog: a slow gate slows the bots down.
            if next_at + Duration::from_secs(1) < now {
                next_at = now;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
    }

    /// Build the `n`th request, or `None` when the bot has no usable credential yet.
    fn prepare(&mut self, n: usize) -> Option<reqwest::RequestBuilder> {
        let spec = &self.spec;
        let ip = spec.sources[n % spec.sources.len()];
        let (method, path) = &spec.requests[n % spec.requests.len()];
        let ua = self.user_agents[n % self.user_agents.len()].clone();
        let credential = match &mut self.watch {
            Some(w) => Some(w.current()?),
            None => None,
        };
        let builder = match (&self.tls, &credential) {
            (Some((addr, ca)), Some((generation, cred))) => {
                let LoadedCredential::Cert { identity, .. } = cred.as_ref() else {
                    tracing::debug!(bot = %spec.name, "credential file holds a token, expected a certificate");
                    return None;
                };
                let client = match self.tls_clients.get(&ip) {
                    Some((g, c)) if g == generation => c.clone(),
                    _ => {
                        let built = base_client(ip, self.opts)
                            .tls_certs_only([ca.clone()])
                            .identity(identity.clone())
                            .resolve(&spec.host, *addr)
                            .build();
                        match built {
                            Ok(c) => {
                                self.tls_clients.insert(ip, (*generation, c.clone()));
                                c
                            }
                            Err(e) => {
                                tracing::debug!(bot = %spec.name, error = %e, "cannot build the TLS client");
                                return None;
                            }
                        }
                    }
                };
                let url = format!("https://{}:{}{}", spec.host, addr.port(), path);
                client.request(method.clone(), url)
            }
            (Some(_), None) => return None,
            (None, _) => {
                let client = self.plain.get(&ip)?;
                client
                    .request(method.clone(), format!("{}{}", self.plain_base, path))
                    .header(reqwest::header::HOST, spec.host.as_str())
            }
        };
        let mut builder = builder.header(USER_AGENT, ua);
        match (&spec.auth, &credential) {
            (BotAuth::TokenFile { .. }, Some((_, cred))) => match cred.as_ref() {
                LoadedCredential::Token {
                    client_id,
                    client_secret,
                    ..
                } => {
                    builder = builder
                        .header(CLIENT_ID_HEADER, client_id.clone())
                        .header(CLIENT_SECRET_HEADER, client_secret.clone());
                }
                LoadedCredential::Cert { .. } => {
                    tracing::debug!(bot = %spec.name, "credential file holds a certificate, expected a token");
                    return None;
                }
            },
            (BotAuth::OidcTokenFile { path }, _) => {
                let token = crate::input::read_to_string(path, crate::input::JWKS_FILE).ok()?;
                let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok()?;
                v.set_sensitive(true);
                builder = builder.header(reqwest::header::AUTHORIZATION, v);
            }
            (BotAuth::GuessedSecret { client_id }, _) => {
                // A well-formed secret with a valid checksum, just not the right one.
                let mut secret = HeaderValue::from_str(ClientSecret::generate().expose()).ok()?;
                secret.set_sensitive(true);
                builder = builder
                    .header(CLIENT_ID_HEADER, client_id.as_str())
                    .header(CLIENT_SECRET_HEADER, secret);
            }
            _ => {}
        }
        Some(builder)
    }
}

fn base_client(ip: IpAddr, opts: FleetOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .connect_timeout(Duration::from_secs(3))
        .timeout(opts.request_timeout)
        .pool_max_idle_per_host(opts.max_in_flight.max(1))
}

async fn send(req: reqwest::RequestBuilder, counters: &BotCounters) {
    counters.sent.fetch_add(1, Ordering::Relaxed);
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            // Read the body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            let slot = if status.is_server_error() {
                &counters.failed
            } else if status.is_client_error() {
                &counters.denied
            } else {
                &counters.ok
            };
            slot.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::debug!(bot = %counters.name, error = %e, "request failed");
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
