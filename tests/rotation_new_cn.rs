//! A certificate rotation to a new CN (`rotate start cert OLD --new-cn NEW`) end to end over the
//! mTLS listener: add names the new CN beside the exact selector of the old one (comments
//! kept), verify refuses while only the old certificate is used, passes once the device
//! switched and the old one was quiet, revoke removes the old CN and publishes a CRL, the old
//! certificate is then refused (401 `cert_revoked`, on kept-alive and new connections) and a "revoked credential
//! still presented" alert names the client. Also: a CN regex that does not admit the new CN
//! stops add until the policy is edited; one that does needs no edit; the old CN stays while
//! another valid certificate carries it; and the trust of the new issuer is checked at add.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate::audit::AccessEvent;
use botgate::gate::RunningGate;
use botgate::pki::{CaInitOptions, ClientCertRequest, IssuedCert, KeyAlgorithm};
use botgate::rotation::{self, Evidence, RotationEnv, RotationError, RotationState, StartOptions};
use botgate::store::Store;
use chrono::Utc;
use common::*;

const POLICY: &str = r#"# devices policy: keep this comment.
[gate]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"

[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "{upstream}"
trusted_cas = ["botgate Root CA"]

# The gateway, by name.
[[app.policy]]
name = "Gateway"
action = "non_identity"
include = [
  { common_name = "gw-1.factory.corp" }, # the first gateway
]

# Factory devices authenticate with certificates; the CN says which device.
[[app.policy]]
name = "Factory devices"
action = "non_identity"
include = [{ common_name = "^device-[a-z0-9-]+\\.factory\\.corp$" }]
"#;

const OLD_CN: &str = "gw-1.factory.corp";
const NEW_CN: &str = "gw-2.factory.corp";

fn ca(store: &Store) -> String {
    botgate::pki::init_ca(
        store,
        &CaInitOptions {
            name: "botgate Root CA".into(),
            key: KeyAlgorithm::EcdsaP256,
            root_key_out: None,
            now: Utc::now(),
        },
    )
    .unwrap()
    .root_cert
    .to_pem()
}

fn issue(store: &Store, cn: &str) -> IssuedCert {
    botgate::pki::issue_client_cert(
        store,
        &ClientCertRequest {
            common_name: cn,
            csr: None,
            days: 30,
            key: KeyAlgorithm::EcdsaP256,
            now: Utc::now(),
        },
    )
    .unwrap()
}

/// A store with the CA and certificates for `cns`, and the demo policy file, for rotations
/// that need no gate.
struct Offline {
    dir: tempfile::TempDir,
    store: Store,
    policy: std::path::PathBuf,
}

impl Offline {
    fn new(cns: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        ca(&store);
        for cn in cns {
            issue(&store, cn);
        }
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, Self::text()).unwrap();
        Self { dir, store, policy }
    }

    /// The policy file as first written.
    fn text() -> String {
        POLICY.replace("{upstream}", "http://127.0.0.1:9")
    }

    fn env(&self) -> RotationEnv<'_> {
        RotationEnv {
            store: &self.store,
            policy_file: &self.policy,
            state_dir: self.dir.path(),
        }
    }

    fn options(&self) -> StartOptions {
        options(self.dir.path(), chrono::Duration::hours(1))
    }
}

fn identity_pem(c: &IssuedCert) -> String {
    format!("{}{}", c.chain_pem, c.key_pem.clone().unwrap())
}

fn options(dir: &Path, quiet: chrono::Duration) -> StartOptions {
    StartOptions {
        quiet_period: quiet,
        min_requests: 1,
        secret_out: None,
        cert_out: Some(dir.to_path_buf()),
        now: Utc::now(),
    }
}

/// Apply the edited policy file to the running gate (what hot reload does).
fn reload(g: &RunningGate, path: &Path) {
    let loaded = botgate::config::load(path).unwrap();
    g.reload_policies(botgate::policy::compile(&loaded.file).unwrap())
        .unwrap();
}

fn audit_events(dir: &Path) -> Vec<AccessEvent> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_rotation_to_a_new_cn_end_to_end() {
    let upstream = echo_upstream().await;
    let text = POLICY.replace("{upstream}", &format!("http://{upstream}"));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, &text).unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let root_pem = ca(&store);
    let old = issue(&store, OLD_CN);
    let g = start_store_tls_gate(dir.path(), store.clone(), &text).await;
    let old_client = mtls_client(&root_pem, &identity_pem(&old), &g);
    assert_eq!(mtls_call(&old_client, &g).await, 200);

    let env = RotationEnv {
        store: &store,
        policy_file: &policy,
        state_dir: dir.path(),
    };
    let started = rotation::start_cert_to_cn(
        &env,
        OLD_CN,
        Some(NEW_CN),
        &options(dir.path(), chrono::Duration::seconds(1)),
    )
    .unwrap();
    let id = started.rotation.id.clone();
    let new_ref = started.rotation.new.clone().unwrap();
    assert_eq!(new_ref.name, NEW_CN);
    assert_eq!(started.rotation.old.name, OLD_CN);
    assert!(
        started.notes.iter().any(|n| n.contains(
            "add will name \"gw-2.factory.corp\" beside \"gw-1.factory.corp\" in \"Gateway\" of app \"devices\""
        )),
        "{:?}",
        started.notes
    );
    let new_pem = format!(
        "{}{}",
        std::fs::read_to_string(&started.files[0]).unwrap(),
        std::fs::read_to_string(&started.files[1]).unwrap()
    );
    assert!(started.files[0].to_string_lossy().contains(NEW_CN));
    let new_client = mtls_client(&root_pem, &new_pem, &g);
    // Before add no policy admits the new CN.
    assert_eq!(mtls_call(&new_client, &g).await, 403);

    // add: the new CN goes beside the exact selector of the old one, comments kept.
    let added = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(added.rotation.state, RotationState::Added);
    let diff = added.diff.clone().expect("the policy file was edited");
    assert!(
        diff.contains(r#"+  { common_name = 'gw-2\.factory\.corp' },"#),
        "{diff}"
    );
    assert_eq!(added.rotation.details.edited_policies.len(), 1);
    assert_eq!(added.rotation.details.edited_policies[0].policy, "Gateway");
    assert!(
        added
            .summary
            .iter()
            .any(|l| l.contains("checked: app \"devices\" trust")),
        "{:?}",
        added.summary
    );
    let edited = std::fs::read_to_string(&policy).unwrap();
    for kept in [
        "# devices policy: keep this comment.",
        "# The gateway, by name.",
        "{ common_name = \"gw-1.factory.corp\" }, # the first gateway",
        "^device-[a-z0-9-]+",
    ] {
        assert!(edited.contains(kept), "{kept:?} missing in\n{edited}");
    }
    reload(&g, &policy);
    assert_eq!(
        mtls_call(&new_client, &g).await,
        200,
        "new CN admitted after add"
    );
    rotation::next(&env, &id, false, Utc::now()).unwrap();

    // Only the old certificate in use: verify refuses and names it.
    let r = rotation::find(&store, &id).unwrap();
    let before = rotation::workflow::collect_evidence(&store, &r).unwrap();
    for _ in 0..3 {
        assert_eq!(mtls_call(&old_client, &g).await, 200);
    }
    let ev = evidence_until(&store, &r, |e| e.old.requests >= before.old.requests + 3).await;
    assert!(ev.old.requests >= 3);
    let Err(RotationError::Refused(refusal)) = rotation::next(&env, &id, false, Utc::now()) else {
        panic!("verify must refuse while the old certificate is in use");
    };
    assert!(
        refusal
            .reason
            .contains(&format!("old credential {OLD_CN} (serial")),
        "{refusal}"
    );

    // The gateway switches; after the quiet period verify passes (evidence by fingerprint).
    assert_eq!(mtls_call(&new_client, &g).await, 200);
    let ev = evidence_until(&store, &r, |e| e.new.requests >= 2).await;
    assert!(ev.new.requests >= 2, "{ev:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let verified = loop {
        match rotation::next(&env, &id, false, Utc::now()) {
            Ok(o) => break o,
            Err(RotationError::Refused(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("verify: {e}"),
        }
    };
    assert_eq!(verified.rotation.state, RotationState::Verified);

    // revoke: the old CN leaves the policy (no other valid certificate has it), CRL published.
    let revoked = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(revoked.rotation.state, RotationState::Revoked);
    assert!(!revoked.rotation.forced);
    let all = revoked.summary.join("\n");
    assert!(all.contains("removed CN \"gw-1.factory.corp\""), "{all}");
    assert!(all.contains("published CRL"), "{all}");
    let after = std::fs::read_to_string(&policy).unwrap();
    assert!(!after.contains("gw-1"), "{after}");
    assert!(after.contains("# devices policy: keep this comment."));
    assert!(after.contains("# The gateway, by name."));
    assert!(after.contains(r"gw-2\.factory\.corp"));
    reload(&g, &policy);

    // A device that did not roll over, on its kept-alive connection: refused as revoked.
    let refused_live = eventually(Duration::from_secs(5), || async {
        matches!(mtls_call(&old_client, &g).await, 0 | 401)
    })
    .await;
    assert!(refused_live, "the old certificate is refused after revoke");
    // On a new connection it is refused too (401 cert_revoked, never in the handshake).
    let refused_new = eventually(Duration::from_secs(10), || async {
        mtls_call(&mtls_client(&root_pem, &identity_pem(&old), &g), &g).await == 401
    })
    .await;
    assert!(
        refused_new,
        "the old certificate is refused on a new connection"
    );
    assert_eq!(mtls_call(&new_client, &g).await, 200);

    // The audit stream shows the refusals; the detector raises the alert naming the client.
    let deadline = Instant::now() + Duration::from_secs(5);
    let events = loop {
        let events = audit_events(dir.path());
        let revoked_events = events
            .iter()
            .filter(|e| e.deny_reason.as_deref() == Some("cert_revoked"))
            .count();
        if revoked_events >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        events
            .iter()
            .any(|e| e.deny_reason.as_deref() == Some("cert_revoked")
                && e.ip_address.as_deref() == Some("127.0.0.1")),
        "the refusal is audited with the client IP"
    );
    // The refusals name the old certificate: the alert can say which credential the
    // straggler presented.
    assert!(
        events
            .iter()
            .filter(|e| e.deny_reason.as_deref() == Some("cert_revoked")
                && e.cert_fingerprint_sha256.is_some()
                && e.cert_common_name.is_some())
            .count()
            >= 2,
        "the refusals name the revoked certificate"
    );
    let mut engine = botgate::detect::Engine::new(botgate::detect::DetectConfig::default());
    let alerts: Vec<String> = events
        .iter()
        .flat_map(|e| engine.observe(e))
        .map(|a| serde_json::to_string(&a).unwrap())
        .collect();
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("failed_auth_after_revocation")
                && a.contains("127.0.0.1")
                && a.contains("gateway-agent/2.1")),
        "an alert names the client that did not roll over: {alerts:?}"
    );

    let out = rotation::rotated_out(&store).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key, old.record.fingerprint_sha256);
    assert_eq!(out[0].replaced_by.as_deref(), Some(NEW_CN));
}

/// A CN regex that admits the old CN but not the new one stops add, with the regex in the
/// evidence, until the policy is edited; a regex that admits both needs no edit.
#[test]
fn a_cn_regex_is_checked_not_widened() {
    let fx = Offline::new(&["device-a1.factory.corp", "device-b1.factory.corp"]);
    let (env, opts) = (fx.env(), fx.options());
    let policy = &fx.policy;
    let store = &fx.store;
    let text = Offline::text();

    // device-a1 → sensor-a1: the device regex does not admit it.
    let started = rotation::start_cert_to_cn(
        &env,
        "device-a1.factory.corp",
        Some("sensor-a1.factory.corp"),
        &opts,
    )
    .unwrap();
    assert!(
        started
            .notes
            .iter()
            .any(|n| n
                .starts_with("add will be refused until you edit the policy: \"Factory devices\"")),
        "known at start: {:?}",
        started.notes
    );
    let view = rotation::view(&started.rotation, &Evidence::default(), Utc::now());
    let next_action = view.next_action.unwrap_or_default();
    assert!(
        next_action.contains("beside every exact common_name selector"),
        "{next_action}"
    );
    let id = started.rotation.id;
    let Err(RotationError::Refused(refusal)) = rotation::next(&env, &id, false, Utc::now()) else {
        panic!("add must refuse while the regex does not admit the new CN");
    };
    let all = refusal.to_string();
    assert!(all.contains("add refused"), "{all}");
    assert!(
        all.contains(r#""Factory devices" of app "devices": common_name "^device-[a-z0-9-]+\\.factory\\.corp$" admits the old CN "device-a1.factory.corp" but NOT the new CN "sensor-a1.factory.corp""#),
        "{all}"
    );
    assert!(
        all.contains(r#"add { common_name = "sensor-a1\\.factory\\.corp" } beside it"#),
        "{all}"
    );
    assert_eq!(std::fs::read_to_string(policy).unwrap(), text, "untouched");
    assert_eq!(
        rotation::find(store, &id).unwrap().state,
        RotationState::Created
    );

    // The user adds the exact CN beside the regex: add passes and edits nothing more.
    let by_hand = text.replace(
        r#"include = [{ common_name = "^device-[a-z0-9-]+\\.factory\\.corp$" }]"#,
        r#"include = [{ common_name = "^device-[a-z0-9-]+\\.factory\\.corp$" }, { common_name = 'sensor-a1\.factory\.corp' }]"#,
    );
    assert_ne!(by_hand, text);
    std::fs::write(policy, &by_hand).unwrap();
    let added = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(added.rotation.state, RotationState::Added);
    assert!(added.diff.is_none());
    assert_eq!(added.rotation.details.already_admitted.len(), 1);

    // device-b1 → device-b2: the regex admits both; recorded, nothing edited.
    let started = rotation::start_cert_to_cn(
        &env,
        "device-b1.factory.corp",
        Some("device-b2.factory.corp"),
        &opts,
    )
    .unwrap();
    let added = rotation::next(&env, &started.rotation.id, false, Utc::now()).unwrap();
    assert!(added.diff.is_none());
    assert!(
        added
            .summary
            .iter()
            .any(|l| l.contains("admits the new CN \"device-b2.factory.corp\" too")),
        "{:?}",
        added.summary
    );
    assert_eq!(std::fs::read_to_string(policy).unwrap(), by_hand);
}

/// Revoke leaves the old CN in the policies while another valid certificate carries it;
/// abort after add takes the new CN out again.
#[test]
fn old_cn_stays_while_another_certificate_uses_it_and_abort_removes_the_new_cn() {
    let fx = Offline::new(&[OLD_CN]);
    let (env, opts) = (fx.env(), fx.options());
    let policy = &fx.policy;
    let store = &fx.store;
    let started = rotation::start_cert_to_cn(&env, OLD_CN, Some(NEW_CN), &opts).unwrap();
    let id = started.rotation.id;
    rotation::next(&env, &id, false, Utc::now()).unwrap();
    // A spare gateway certificate with the old CN, issued meanwhile.
    let spare = issue(store, OLD_CN);
    let revoked = rotation::next(&env, &id, true, Utc::now()).unwrap();
    assert!(revoked.rotation.forced, "forced revoke is recorded");
    let all = revoked.summary.join("\n");
    assert!(all.contains("kept CN \"gw-1.factory.corp\""), "{all}");
    assert!(all.contains(&spare.record.serial[..12]), "{all}");
    let after = std::fs::read_to_string(policy).unwrap();
    assert!(after.contains("gw-1.factory.corp") && after.contains(r"gw-2\.factory\.corp"));

    // Abort after add: the new CN leaves the policy again.
    let started =
        rotation::start_cert_to_cn(&env, "gw-1.factory.corp", Some("gw-3.factory.corp"), &opts)
            .unwrap();
    rotation::next(&env, &started.rotation.id, false, Utc::now()).unwrap();
    assert!(std::fs::read_to_string(policy).unwrap().contains("gw-3"));
    let aborted = rotation::abort(&env, &started.rotation.id, Utc::now()).unwrap();
    assert_eq!(aborted.rotation.state, RotationState::Aborted);
    assert!(!std::fs::read_to_string(policy).unwrap().contains("gw-3"));
    assert_eq!(std::fs::read_to_string(policy).unwrap(), after);
}

/// The issuer of the new certificate is checked against `trusted_cas` at add as well: a policy
/// changed since start (or a new intermediate) is caught before both credentials are "valid".
#[test]
fn add_refuses_when_the_app_does_not_trust_the_new_issuer() {
    let fx = Offline::new(&[OLD_CN]);
    let (env, opts) = (fx.env(), fx.options());
    let policy = &fx.policy;
    let store = &fx.store;
    let text = Offline::text();
    let started = rotation::start_cert_to_cn(&env, OLD_CN, Some(NEW_CN), &opts).unwrap();
    std::fs::write(
        policy,
        text.replace(
            r#"trusted_cas = ["botgate Root CA"]"#,
            r#"trusted_cas = ["Corporate Device CA"]"#,
        ),
    )
    .unwrap();
    let Err(RotationError::Refused(refusal)) =
        rotation::next(&env, &started.rotation.id, false, Utc::now())
    else {
        panic!("add must refuse when the app does not trust the new issuer");
    };
    assert!(
        refusal
            .reason
            .contains("app \"devices\" trusts only [\"Corporate Device CA\"]"),
        "{refusal}"
    );
    assert_eq!(
        rotation::find(store, &started.rotation.id).unwrap().state,
        RotationState::Created
    );
}
