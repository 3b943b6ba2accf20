//! OIDC workload identity end to end: a test issuer on loopback serves discovery and a JWKS;
//! tokens with GitHub-Actions-shaped claims are minted by `jsonwebtoken` (not botgate's code)
//! with RS256 and ES256 keys, and sent through a real gate to a real upstream.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk};

const AUD: &str = "https://api.example.com";

/// A test issuer: discovery at `/.well-known/openid-configuration`, keys at `/jwks`.
struct Issuer {
    addr: SocketAddr,
    jwks: Arc<Mutex<serde_json::Value>>,
    down: Arc<AtomicBool>,
    jwks_hits: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(serde_json::json!({ "keys": [] })));
        let down = Arc::new(AtomicBool::new(false));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let (j, d, h) = (jwks.clone(), down.clone(), jwks_hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (j, d, h) = (j.clone(), d.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (j, d, h) = (j.clone(), d.clone(), h.clone());
                        async move {
                            let mut resp = Response::new(Full::new(Bytes::new()));
                            if d.load(Ordering::SeqCst) {
                                *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                return Ok::<_, Infallible>(resp);
                            }
                            let body = match req.uri().path() {
                                "/.well-known/openid-configuration" => serde_json::json!({
                                    "issuer": format!("http://{addr}"),
                                    "jwks_uri": format!("http://{addr}/jwks"),
                                })
                                .to_string(),
                                "/jwks" => {
                                    h.fetch_add(1, Ordering::SeqCst);
                                    j.lock().unwrap().to_string()
                                }
                                _ => {
                                    *resp.status_mut() = StatusCode::NOT_FOUND;
                                    return Ok(resp);
                                }
                            };
                            *resp.body_mut() = Full::new(Bytes::from(body));
                            Ok(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            jwks,
            down,
            jwks_hits,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn publish(&self, keys: &[&Key]) {
        let set: Vec<serde_json::Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        *self.jwks.lock().unwrap() = serde_json::json!({ "keys": set });
    }
}

/// A signing key of the test issuer: the private key for jsonwebtoken, its public JWK.
struct Key {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: serde_json::Value,
    /// The public key in PEM (for the algorithm-confusion forgery).
    public_pem: String,
}

impl Key {
    fn new(kid: &str, alg: Algorithm) -> Self {
        let pair = match alg {
            Algorithm::RS256 => botgate::pki::KeyAlgorithm::Rsa2048.generate().unwrap(),
            Algorithm::ES256 => botgate::pki::KeyAlgorithm::EcdsaP256.generate().unwrap(),
            _ => unreachable!(),
        };
        let pem = pair.serialize_pem();
        let enc = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        };
        let mut j = serde_json::to_value(jwk::Jwk::from_encoding_key(&enc, alg).unwrap()).unwrap();
        j["kid"] = kid.into();
        j["use"] = "sig".into();
        Self {
            kid: kid.into(),
            alg,
            enc,
            jwk: j,
            public_pem: pair.public_key_pem(),
        }
    }

    fn mint(&self, claims: &serde_json::Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// GitHub Actions' claims for a deploy job on main.
fn claims(iss: &str) -> serde_json::Value {
    serde_json::json!({
        "iss": iss,
        "aud": AUD,
        "sub": "repo:example/api:ref:refs/heads/main",
        "repository": "example/api",
        "repository_owner": "example",
        "ref": "refs/heads/main",
        "workflow": "deploy",
        "job_workflow_ref": "example/api/.github/workflows/deploy.yml@refs/heads/main",
        "run_id": "123456789",
        "actor": "octocat",
        "iat": now() - 5,
        "nbf": now() - 5,
        "exp": now() + 300,
    })
}

fn policy(issuer: &str, extra: &str) -> String {
    format!(
        r#"
[gate]
listen = "127.0.0.1:0"

[[oidc_issuer]]
name = "github"
issuer = "{issuer}"
audiences = ["{AUD}"]
{extra}

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "{{upstream}}"

[[app.policy]]
name = "Deploys from main"
action = "service_auth"
include = [{{ oidc = {{ issuer = "github", claims = {{ repository = "example/api", ref = "refs/heads/main" }} }} }}]
require = [{{ oidc_claim = {{ job_workflow_ref = "^example/api/\\.github/workflows/deploy\\.yml@.*$" }} }}]
"#
    )
}

async fn call(g: &TestGate, auth: Option<(&str, &str)>) -> (u16, serde_json::Value) {
    let mut r = client().get(g.url("/deploy")).header("host", "api.test");
    if let Some((h, v)) = auth {
        r = r.header(h, v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// The last access event (after `n` of them are in the log).
async fn nth_event(g: &TestGate, n: usize) -> serde_json::Value {
    let events = g.wait_for_access_events(n).await;
    assert!(
        events.len() >= n,
        "expected {n} access events, got {}",
        events.len()
    );
    events[n - 1].clone()
}

#[tokio::test]
async fn good_tokens_pass_and_never_reach_the_upstream_or_the_log() {
    let issuer = Issuer::start().await;
    let rs = Key::new("rs-1", Algorithm::RS256);
    let es = Key::new("es-1", Algorithm::ES256);
    issuer.publish(&[&rs, &es]);
    let g = start_gate_with(
        &policy(&issuer.url(), ""),
        |_| {},
        |o| o.admin_listen = Some("127.0.0.1:0".parse().unwrap()),
    )
    .await;

    let token = rs.mint(&claims(&issuer.url()));
    let (status, echo) = call(&g, Some(("authorization", &bearer(&token)))).await;
    assert_eq!(status, 200, "{echo}");
    let headers = &echo["headers"];
    assert!(
        headers.get("authorization").is_none(),
        "the JWT was forwarded: {headers}"
    );
    assert_eq!(
        headers["x-botgate-identity"],
        "oidc:github/repo:example/api:ref:refs/heads/main"
    );
    assert_eq!(headers["x-botgate-connection"], "oidc");
    assert!(headers.get("cf-access-jwt-assertion").is_some());

    // ES256, through the one-header form.
    let token2 = es.mint(&claims(&issuer.url()));
    let (status, echo) = call(&g, Some(("cf-access-token", &token2))).await;
    assert_eq!(status, 200, "{echo}");
    assert!(echo["headers"].get("cf-access-token").is_none());

    // The same token again: taken from the verified-token cache.
    let (status, _) = call(&g, Some(("authorization", &bearer(&token)))).await;
    assert_eq!(status, 200);
    let ev = nth_event(&g, 3).await;
    assert_eq!(ev["connection_method"], "oidc");
    assert_eq!(
        ev["oidc_identity"],
        "oidc:github/repo:example/api:ref:refs/heads/main"
    );
    assert_eq!(ev["oidc_claims"]["repository"], "example/api");
    assert_eq!(ev["oidc_claims"]["run_id"], "123456789");
    assert_eq!(ev["policy_name"], "Deploys from main");
    let log = std::fs::read_to_string(&g.audit_log).unwrap();
    for t in [&token, &token2] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a JWT reached the audit log");
    }
    // One key-set fetch served every verification (discovery + JWKS at start).
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 1);
    let metrics = client()
        .get(format!("http://{}/metrics", g.gate.admin_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("botgate_oidc_verified_total{issuer=\"github\"} 3"),
        "{metrics}"
    );
    for line in [
        "botgate_oidc_token_cache_hits_total{issuer=\"github\"} 1",
        "botgate_oidc_key_cache_hits_total{issuer=\"github\"} 2",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(
        metrics.contains("botgate_oidc_refresh_failures{issuer=\"github\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_bad_token_gets_its_reason() {
    let issuer = Issuer::start().await;
    let rs = Key::new("rs-1", Algorithm::RS256);
    issuer.publish(&[&rs]);
    let g = start_gate(&policy(&issuer.url(), ""), |_| {}).await;
    let iss = issuer.url();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims(&iss);
        f(&mut c);
        rs.mint(&c)
    };
    let b64 = |v: &serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let good = rs.mint(&claims(&iss));
    let parts: Vec<&str> = good.split('.').collect();
    // Tampered payload: the repository changed after signing.
    let mut forged_claims = claims(&iss);
    forged_claims["repository"] = "evil/api".into();
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged_claims), parts[2]);
    // alg none: header says none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    // Algorithm confusion: HS256 "signed" with the issuer's public key as the secret.
    let confused = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rs-1".into());
        jsonwebtoken::encode(
            &h,
            &claims(&iss),
            &EncodingKey::from_secret(rs.public_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let unknown_kid = Key::new("rs-unknown", Algorithm::RS256).mint(&claims(&iss));
    let other_issuer = with(&|c| c["iss"] = "https://token.example.invalid".into());
    let oversized = with(&|c| c["padding"] = "x".repeat(9000).into());
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "wrong repository",
            with(&|c| c["repository"] = "example/other".into()),
            403,
            "no_policy_matched",
        ),
        (
            "wrong branch",
            with(&|c| c["ref"] = "refs/heads/dev".into()),
            403,
            "no_policy_matched",
        ),
        (
            "wrong workflow",
            with(&|c| {
                c["job_workflow_ref"] = "example/api/.github/workflows/x.yml@refs/heads/main".into()
            }),
            403,
            "no_policy_matched",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = "https://other.example.com".into()),
            401,
            "oidc_wrong_audience",
        ),
        (
            "expired",
            with(&|c| {
                c["exp"] = (now() - 3600).into();
                c["iat"] = (now() - 7200).into();
                c["nbf"] = (now() - 7200).into();
            }),
            401,
            "oidc_expired",
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = (now() + 3600).into()),
            401,
            "oidc_not_yet_valid",
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            401,
            "oidc_malformed",
        ),
        ("alg none", none, 401, "oidc_bad_signature"),
        (
            "HS256 with the public key",
            confused,
            401,
            "oidc_bad_signature",
        ),
        ("unknown kid", unknown_kid, 401, "oidc_bad_signature"),
        ("tampered payload", tampered, 401, "oidc_bad_signature"),
        ("unknown issuer", other_issuer, 401, "oidc_unknown_issuer"),
        ("oversized", oversized, 401, "oidc_malformed"),
        (
            "not a JWT in cf-access-token",
            "abc".into(),
            401,
            "oidc_malformed",
        ),
    ];
    let mut n = 0;
    for (what, token, status, reason) in &cases {
        let header = if what.contains("cf-access-token") {
            "cf-access-token"
        } else {
            "authorization"
        };
        let value = if header == "authorization" {
            bearer(token)
        } else {
            token.clone()
        };
        let (got, body) = call(&g, Some((header, &value))).await;
        n += 1;
        let ev = nth_event(&g, n).await;
        assert_eq!(got, *status, "{what}: {body} {ev}");
        assert_eq!(ev["deny_reason"], *reason, "{what}: {ev}");
        assert_eq!(ev["connection_method"], "oidc", "{what}");
    }
    let log = std::fs::read_to_string(&g.audit_log).unwrap();
    assert!(!log.contains(parts[2]), "a signature reached the audit log");
    // Explanations name the check without the token.
    let confused_ev = nth_event(&g, 9).await;
    assert!(
        confused_ev["details"]["oidc_error"]
            .as_str()
            .unwrap()
            .contains("HMAC"),
        "{confused_ev}"
    );
    // A bearer token that is not a JWT is the upstream's business: no credential, 401.
    let (got, _) = call(&g, Some(("authorization", "Bearer opaque-api-key"))).await;
    assert_eq!(got, 401);
    let ev = nth_event(&g, n + 1).await;
    assert_eq!(ev["deny_reason"], "missing_credentials");
}

#[tokio::test]
async fn issuer_key_rotation_is_picked_up_without_restart() {
    let issuer = Issuer::start().await;
    let old = Key::new("k-old", Algorithm::RS256);
    issuer.publish(&[&old]);
    let g = start_gate(&policy(&issuer.url(), ""), |_| {}).await;
    let (s, _) = call(
        &g,
        Some(("authorization", &bearer(&old.mint(&claims(&issuer.url()))))),
    )
    .await;
    assert_eq!(s, 200);
    let hits = issuer.jwks_hits.load(Ordering::SeqCst);
    // The issuer rotates: a new kid signs; the gate refreshes on the unknown kid at once.
    let new = Key::new("k-new", Algorithm::ES256);
    issuer.publish(&[&old, &new]);
    let (s, body) = call(
        &g,
        Some(("authorization", &bearer(&new.mint(&claims(&issuer.url()))))),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), hits + 1);
    // A second unknown kid within the minute does not make the gate fetch again.
    let stranger = Key::new("k-stranger", Algorithm::RS256);
    let (s, _) = call(
        &g,
        Some((
            "authorization",
            &bearer(&stranger.mint(&claims(&issuer.url()))),
        )),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), hits + 1);
    let ev = nth_event(&g, 3).await;
    assert!(
        ev["details"]["oidc_error"]
            .as_str()
            .unwrap()
            .contains("within the last minute"),
        "{ev}"
    );
    // The issuer retires the old key: a token that verified with it (and was cached) is
    // checked again against the new set, and refused.
    let old_token = old.mint(&claims(&issuer.url()));
    let (s, _) = call(&g, Some(("authorization", &bearer(&old_token)))).await;
    assert_eq!(s, 200);
    issuer.publish(&[&new]);
    let state = g.gate.state.oidc.by_name("github").unwrap();
    let change = g
        .gate
        .state
        .oidc
        .refresh(&state, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(change.removed, vec!["k-old"]);
    let (s, _) = call(&g, Some(("authorization", &bearer(&old_token)))).await;
    assert_eq!(s, 401, "a cached token outlived its key");
}

#[tokio::test]
async fn issuer_down_keeps_cached_keys() {
    let issuer = Issuer::start().await;
    let k = Key::new("k1", Algorithm::RS256);
    issuer.publish(&[&k]);
    // The shortest cache lifetime, so the gate tries to refresh while the issuer is down.
    let g = start_gate(&policy(&issuer.url(), "refresh = \"1m\""), |_| {}).await;
    let (s, _) = call(
        &g,
        Some(("authorization", &bearer(&k.mint(&claims(&issuer.url()))))),
    )
    .await;
    assert_eq!(s, 200);
    issuer.down.store(true, Ordering::SeqCst);
    let state = g.gate.state.oidc.by_name("github").unwrap();
    let err = state.clone();
    // A refresh fails, and the key set in use stays.
    let outcome = g.gate.state.oidc.refresh(&err, chrono::Utc::now()).await;
    assert!(outcome.unwrap_err().contains("503"));
    assert_eq!(state.status().failures, 1);
    let (s, _) = call(
        &g,
        Some(("authorization", &bearer(&k.mint(&claims(&issuer.url()))))),
    )
    .await;
    assert_eq!(
        s, 200,
        "cached keys must keep working while the issuer is down"
    );
    // The state file records the failure and still holds the last good set.
    let file = botgate::oidc::StateFile::load(g.dir.path(), "github").unwrap();
    assert_eq!(file.kids, vec!["k1"]);
    assert!(file.status.last_error.unwrap().contains("503"));
}

/// The freshness alert, through the whole runtime (detectors included) on a moving clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_key_set_raises_an_alert() {
    use botgate::runtime::{ReloadReport, Runtime, RuntimeOptions};
    let issuer = Issuer::start().await;
    let k = Key::new("k1", Algorithm::RS256);
    issuer.publish(&[&k]);
    let dir = tempfile::tempdir().unwrap();
    let upstream = echo_upstream().await;
    let text = policy(&issuer.url(), "max_key_age = \"5m\"")
        .replace("{upstream}", &format!("http://{upstream}"));
    let config = dir.path().join("policy.toml");
    std::fs::write(&config, text).unwrap();
    let loaded = botgate::config::load(&config).unwrap();
    let store = Arc::new(botgate::store::Store::open(dir.path()).unwrap());
    let clock = Arc::new(botgate::clock::FixedClock::at(chrono::Utc::now()));
    let mut opts = RuntimeOptions::new(&config, dir.path());
    opts.clock = clock.clone();
    opts.report = ReloadReport::Console;
    opts.tick_every = Some(Duration::from_millis(100));
    let rt = Runtime::start(&loaded, store, opts).await.unwrap();
    let state = rt.gate.state.oidc.by_name("github").unwrap();
    assert!(eventually(Duration::from_secs(10), || async { state.keys().is_some() }).await);
    issuer.down.store(true, Ordering::SeqCst);
    clock.advance(chrono::Duration::minutes(10));
    let log = rt.gate.audit_log().to_path_buf();
    let alerted = eventually(Duration::from_secs(20), || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"oidc_keys_stale\""))
    })
    .await;
    assert!(
        alerted,
        "no oidc_keys_stale alert in {}",
        std::fs::read_to_string(&log).unwrap()
    );
    // The cached key still verifies (tokens minted for the gate's clock).
    let mut c = claims(&issuer.url());
    let t = clock.as_ref();
    use botgate::clock::Clock as _;
    c["iat"] = (t.now().timestamp() - 5).into();
    c["nbf"] = (t.now().timestamp() - 5).into();
    c["exp"] = (t.now().timestamp() + 300).into();
    let resp = client()
        .get(format!("http://{}/deploy", rt.gate.addr))
        .header("host", "api.test")
        .header("authorization", bearer(&k.mint(&c)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    rt.stop().await;
}

/// The command line as a user runs it: `policy check` warns about an issuer-wide selector,
/// `issuer refresh|list|show` report the key set, `policy explain --jwt` verifies like the gate
/// and never prints the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_issuer_and_explain_jwt() {
    let issuer = Issuer::start().await;
    let k = Key::new("gh-key-1", Algorithm::RS256);
    issuer.publish(&[&k]);
    let env = CliEnv::new();
    let mut text = policy(&issuer.url(), "").replace("{upstream}", "http://127.0.0.1:9");
    text.push_str(
        r#"
[[app.policy]]
name = "Any job"
action = "service_auth"
include = [{ oidc = { issuer = "github" } }]
"#,
    );
    std::fs::write(env.path("policy.toml"), &text).unwrap();
    let (code, out, err) = tokio::task::block_in_place(|| env.run(&["policy", "check"]));
    let all = format!("{out}{err}");
    assert!(all.contains("admits every workload"), "{all}");
    assert_eq!(code, 0, "warnings only: {all}");

    let (code, out, err) =
        tokio::task::block_in_place(|| env.run(&["issuer", "refresh", "github"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 key(s)") && out.contains("first fetch"),
        "{out}"
    );
    let list = tokio::task::block_in_place(|| env.json(&["issuer", "list"]));
    assert_eq!(list[0]["name"], "github");
    assert_eq!(list[0]["kids"][0], "gh-key-1");
    assert_eq!(list[0]["stale"], false);
    let (code, out, _) = tokio::task::block_in_place(|| env.run(&["issuer", "show", "github"]));
    assert_eq!(code, 0);
    assert!(out.contains("key gh-key-1  RSA 2048"), "{out}");
    let (code, _, err) = tokio::task::block_in_place(|| env.run(&["issuer", "show", "gitlab"]));
    assert_eq!(code, 2);
    assert!(err.contains("configured: github"), "{err}");

    let token = k.mint(&claims(&issuer.url()));
    std::fs::write(env.path("token.jwt"), &token).unwrap();
    let (code, out, err) = tokio::task::block_in_place(|| {
        env.run(&[
            "policy",
            "explain",
            "--app",
            "api.test",
            "--jwt",
            "token.jwt",
        ])
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("oidc:github/repo:example/api:ref:refs/heads/main"),
        "{out}"
    );
    assert!(out.contains("signature: verifies"), "{out}");
    assert!(
        out.contains("=> allow 200 by policy \"Deploys from main\""),
        "{out}"
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(!out.contains(signature) && !err.contains(signature));
    println!("{out}");

    let mut c = claims(&issuer.url());
    c["ref"] = "refs/heads/dev".into();
    std::fs::write(env.path("dev.jwt"), k.mint(&c)).unwrap();
    let (code, out, _) = tokio::task::block_in_place(|| {
        env.run(&["policy", "explain", "--app", "api.test", "--jwt", "dev.jwt"])
    });
    assert_eq!(
        code, 0,
        "the issuer-wide policy admits the dev branch: {out}"
    );
    assert!(
        out.contains("\"Deploys from main\" (service_auth): skipped: no include selector matched"),
        "{out}"
    );
    assert!(out.contains("by policy \"Any job\""), "{out}");

    let mut c = claims(&issuer.url());
    c["aud"] = "https://elsewhere.example".into();
    std::fs::write(env.path("aud.jwt"), k.mint(&c)).unwrap();
    let (code, out, _) = tokio::task::block_in_place(|| {
        env.run(&["policy", "explain", "--app", "api.test", "--jwt", "aud.jwt"])
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("deny 401 (oidc_wrong_audience)"), "{out}");
}
