//! Property: for random policies, tokens and certificates, `policy explain` gives the answer a
//! real request to a running gate gets (status and `deny_reason`). Tokens: live, revoked,
//! expired, unknown. Certificates (issued by botgate's CA, plain HTTPS clients): live, revoked
//! with `cert revoke`, expired, and one from a CA the app does not trust.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use botgate::cli::{ExplainArgs, JsonFlag};
use botgate::pki::{CaInitOptions, ClientCertRequest, KeyAlgorithm};
use botgate::store::Store;
use proptest::prelude::*;

const SELECTORS: &[&str] = &[
    r#"{ service_token = "ci-a-prod" }"#,
    r#"{ service_token = "ci-c-prod" }"#,
    r#"{ any_service_token = true }"#,
    r#"{ common_name = "dev-[12]" }"#,
    r#"{ common_name = "dev-.*" }"#,
    r#"{ valid_certificate = true }"#,
    r#"{ everyone = true }"#,
    r#"{ ip = ["127.0.0.0/8"] }"#,
    r#"{ ip = ["10.0.0.0/8"] }"#,
    r#"{ country = ["US"] }"#,
];
const ACTIONS: &[&str] = &["service_auth", "non_identity", "allow", "block", "bypass"];
const TOKENS: &[&str] = &[
    "ci-a-prod",
    "ci-b-prod",
    "ci-c-prod",
    "ci-d-prod",
    "ci-x-prod",
];
const CERTS: &[&str] = &[
    "dev-1",
    "dev-2",
    "dev-3-revoked",
    "dev-4-expired",
    "rogue-dev-1",
];

#[derive(Debug, Clone)]
struct PolicySpec {
    action: usize,
    include: Vec<usize>,
    require: Option<usize>,
    exclude: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Token(usize),
    Cert(usize),
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    (
        0..ACTIONS.len(),
        prop::collection::vec(0..SELECTORS.len(), 1..3),
        prop::option::weighted(0.3, 0..SELECTORS.len()),
        prop::option::weighted(0.3, 0..SELECTORS.len()),
    )
        .prop_map(|(action, include, require, exclude)| PolicySpec {
            action,
            include,
            require,
            exclude,
        })
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        (0..TOKENS.len()).prop_map(Who::Token),
        (0..CERTS.len()).prop_map(Who::Cert),
    ]
}

fn policy_text(specs: &[PolicySpec], upstream: &str) -> String {
    let mut t = format!(
        "[gate]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\naudit_log = \"audit.jsonl\"\n\n[[app]]\nname = \"devices\"\nhostnames = [\"devices.test\"]\nupstream = \"{upstream}\"\ntrusted_cas = [\"botgate Root CA\"]\n"
    );
    for (i, p) in specs.iter().enumerate() {
        let list = |v: &[usize]| {
            v.iter()
                .map(|s| SELECTORS[*s])
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.push_str(&format!(
            "\n[[app.policy]]\nname = \"p{i}\"\naction = \"{}\"\ninclude = [{}]\n",
            ACTIONS[p.action],
            list(&p.include)
        ));
        if let Some(r) = p.require {
            t.push_str(&format!("require = [{}]\n", SELECTORS[r]));
        }
        if let Some(e) = p.exclude {
            t.push_str(&format!("exclude = [{}]\n", SELECTORS[e]));
        }
    }
    t
}

struct World {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    store: Arc<Store>,
    gate: botgate::gate::RunningGate,
    upstream: String,
    root_pem: String,
    tokens: Vec<common::TestToken>,
    /// Per certificate: the chain+key PEM for the client, and the chain file for explain.
    certs: Vec<(String, PathBuf)>,
}

fn world() -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let now = chrono::Utc::now();
    let ca = botgate::pki::init_ca(
        &store,
        &CaInitOptions {
            name: "botgate Root CA".into(),
            key: KeyAlgorithm::EcdsaP256,
            root_key_out: None,
            now,
        },
    )
    .unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue_store = Store::open(rogue_dir.path()).unwrap();
    botgate::pki::init_ca(
        &rogue_store,
        &CaInitOptions {
            name: "botgate Root CA".into(),
            key: KeyAlgorithm::EcdsaP256,
            root_key_out: None,
            now,
        },
    )
    .unwrap();
    let issue = |store: &Store, cn: &str, at: chrono::DateTime<chrono::Utc>| {
        let req = ClientCertRequest {
            common_name: cn,
            csr: None,
            days: 1,
            key: KeyAlgorithm::EcdsaP256,
            now: at,
        };
        botgate::pki::issue_client_cert(store, &req).unwrap()
    };
    let issued = [
        issue(&store, "dev-1", now),
        issue(&store, "dev-2", now),
        issue(&store, "dev-3", now),
        issue(&store, "dev-4", now - chrono::Duration::days(30)),
        issue(&rogue_store, "dev-1", now),
    ];
    botgate::store::wait(store.revoke_cert(issued[2].record.id, now, Some("keyCompromise")))
        .unwrap();
    let certs = issued
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let path = dir.path().join(format!("cert{i}.crt"));
            std::fs::write(&path, &c.chain_pem).unwrap();
            (
                format!("{}{}", c.chain_pem, c.key_pem.as_deref().unwrap()),
                path,
            )
        })
        .collect();
    let tokens = vec![
        common::create_token(&store, TOKENS[0], chrono::Duration::days(30)),
        common::create_token(&store, TOKENS[1], chrono::Duration::days(30)),
        common::create_token(&store, TOKENS[2], chrono::Duration::days(30)),
        common::create_token(&store, TOKENS[3], chrono::Duration::seconds(-60)),
        // Never stored: the gate does not know its client id.
        common::TestToken {
            name: TOKENS[4].into(),
            client_id: botgate::credential::ClientId::generate().to_string(),
            secret: botgate::credential::ClientSecret::generate()
                .expose()
                .to_string(),
        },
    ];
    botgate::store::wait(store.revoke_token(TOKENS[2], now)).unwrap();
    let upstream = format!("http://{}", rt.block_on(common::echo_upstream()));
    let text = policy_text(
        &[PolicySpec {
            action: 3,
            include: vec![6],
            require: None,
            exclude: None,
        }],
        &upstream,
    );
    let gate = rt.block_on(common::start_store_tls_gate(
        dir.path(),
        store.clone(),
        &text,
    ));
    World {
        rt,
        dir,
        store,
        gate,
        upstream,
        root_pem: ca.root.cert_pem,
        tokens,
        certs,
    }
}

impl World {
    /// (status, deny_reason) from the running gate.
    fn ask_gate(&self, who: Who) -> (u16, Option<String>) {
        self.rt.block_on(async {
            let (status, body) = match who {
                Who::Token(i) => {
                    let t = &self.tokens[i];
                    let r = common::client()
                        .get(format!("http://{}/", self.gate.addr))
                        .header("host", "devices.test")
                        .header("cf-access-client-id", &t.client_id)
                        .header("cf-access-client-secret", &t.secret)
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                }
                Who::Cert(i) => {
                    let c = common::mtls_client(&self.root_pem, &self.certs[i].0, &self.gate);
                    let port = self.gate.tls_addr.unwrap().port();
                    let r = c
                        .get(format!("https://devices.test:{port}/"))
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                }
            };
            if status == 200 {
                return (status, None);
            }
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            let ray = body["ray_id"].as_str().unwrap().to_string();
            let log = self.dir.path().join("audit.jsonl");
            let mut reason = None;
            let found = common::eventually(Duration::from_secs(5), || {
                reason = std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|e| e["ray_id"] == ray.as_str())
                    .and_then(|e| e["deny_reason"].as_str().map(str::to_string));
                let done = reason.is_some();
                async move { done }
            })
            .await;
            assert!(found, "no audit event for ray {ray}");
            (status, reason)
        })
    }

    fn ask_explain(
        &self,
        policies: &botgate::policy::PolicySet,
        who: Who,
    ) -> (u16, Option<String>) {
        let args = ExplainArgs {
            app: "devices.test".into(),
            token: match who {
                Who::Token(i) => Some(TOKENS[i].into()),
                Who::Cert(_) => None,
            },
            cert: match who {
                Who::Cert(i) => Some(self.certs[i].1.clone()),
                Who::Token(_) => None,
            },
            jwt: None,
            ip: Some("127.0.0.1".parse().unwrap()),
            country: None,
            json: JsonFlag { json: true },
        };
        let out = botgate::commands::explain::explain(
            policies,
            &self.store,
            None,
            &args,
            chrono::Utc::now(),
        )
        .unwrap();
        (out.status, out.deny_reason.map(str::to_string))
    }
}

#[test]
fn explain_answers_what_the_gate_enforces() {
    let w = world();
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(specs in prop::collection::vec(policy_spec(), 1..4), who in who())| {
        let text = policy_text(&specs, &w.upstream);
        let file: botgate::config::PolicyFile = toml::from_str(&text).unwrap();
        let Ok(policies) = botgate::policy::compile(&file) else {
            return Ok(());
        };
        w.gate.state.policies.store(Arc::new(botgate::policy::compile(&file).unwrap()));
        let explained = w.ask_explain(&policies, who);
        let enforced = w.ask_gate(who);
        prop_assert_eq!(&explained, &enforced, "{:?} under\n{}", who, text);
    });
}
