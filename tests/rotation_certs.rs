//! A certificate rotation end to end over the mTLS listener: two certificates with the same CN
//! are told apart by fingerprint in the audit stream, the CN policy admits the new one without
//! an edit, verify refuses while the old one is in use, and after revoke (+ CRL) the old
//! certificate is refused while the new one works.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use botgate::pki::{CaInitOptions, ClientCertRequest, KeyAlgorithm};
use botgate::rotation::{self, RotationEnv, RotationError, RotationState, StartOptions};
use botgate::store::Store;
use chrono::Utc;
use common::*;

const POLICY: &str = r#"# devices policy
[gate]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"

[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "{upstream}"
trusted_cas = ["botgate Root CA"]

# Factory devices authenticate with certificates; the CN says which device.
[[app.policy]]
name = "Factory devices"
action = "non_identity"
include = [{ common_name = "^device-[a-z0-9-]+\\.factory\\.corp$" }]
"#;

const CN: &str = "device-a1.factory.corp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_rotation_with_the_same_cn_told_apart_by_fingerprint() {
    let upstream = echo_upstream().await;
    let text = POLICY.replace("{upstream}", &format!("http://{upstream}"));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, &text).unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let ca = botgate::pki::init_ca(
        &store,
        &CaInitOptions {
            name: "botgate Root CA".into(),
            key: KeyAlgorithm::EcdsaP256,
            root_key_out: None,
            now: Utc::now(),
        },
    )
    .unwrap();
    let root_pem = ca.root_cert.to_pem();
    let old = botgate::pki::issue_client_cert(
        &store,
        &ClientCertRequest {
            common_name: CN,
            csr: None,
            days: 30,
            key: KeyAlgorithm::EcdsaP256,
            now: Utc::now(),
        },
    )
    .unwrap();
    let old_identity = format!("{}{}", old.chain_pem, old.key_pem.clone().unwrap());
    let g = start_store_tls_gate(dir.path(), store.clone(), &text).await;
    let old_client = mtls_client(&root_pem, &old_identity, &g);
    assert_eq!(mtls_call(&old_client, &g).await, 200);

    let env = RotationEnv {
        store: &store,
        policy_file: &policy,
        state_dir: dir.path(),
    };
    let started = rotation::start_cert(
        &env,
        CN,
        &StartOptions {
            quiet_period: chrono::Duration::seconds(1),
            min_requests: 1,
            secret_out: None,
            cert_out: Some(dir.path().to_path_buf()),
            now: Utc::now(),
        },
    )
    .unwrap();
    let id = started.rotation.id.clone();
    let new_ref = started.rotation.new.clone().unwrap();
    assert_eq!(new_ref.name, CN, "same CN");
    assert_ne!(
        new_ref.key, started.rotation.old.key,
        "different fingerprint"
    );
    assert_eq!(started.files.len(), 2);
    let new_identity = format!(
        "{}{}",
        std::fs::read_to_string(&started.files[0]).unwrap(),
        std::fs::read_to_string(&started.files[1]).unwrap()
    );

    // add: the CN policy admits the new certificate already; the file is not touched.
    let added = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(added.rotation.state, RotationState::Added);
    assert!(added.diff.is_none());
    assert_eq!(added.rotation.details.already_admitted.len(), 1);
    assert!(
        added
            .summary
            .iter()
            .any(|l| l.contains("nothing needed editing")),
        "{:?}",
        added.summary
    );
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), text);
    rotation::next(&env, &id, false, Utc::now()).unwrap();

    // Only the old certificate in use: verify refuses.
    for _ in 0..3 {
        assert_eq!(mtls_call(&old_client, &g).await, 200);
    }
    let r = rotation::find(&store, &id).unwrap();
    let ev = evidence_until(&store, &r, |e| e.old.requests >= 3).await;
    assert_eq!((ev.old.requests, ev.new.requests), (3, 0));
    let Err(RotationError::Refused(refusal)) = rotation::next(&env, &id, false, Utc::now()) else {
        panic!("verify must refuse while the old certificate is in use");
    };
    assert!(
        refusal
            .reason
            .contains(&format!("old credential {CN} (serial")),
        "{refusal}"
    );
    assert!(refusal.reason.contains("seen 3 times"), "{refusal}");

    // The device switches to the new certificate: same CN, told apart by fingerprint.
    let new_client = mtls_client(&root_pem, &new_identity, &g);
    assert_eq!(mtls_call(&new_client, &g).await, 200);
    let ev = evidence_until(&store, &r, |e| e.new.requests >= 1).await;
    assert_eq!((ev.old.requests, ev.new.requests), (3, 1));

    let deadline = Instant::now() + Duration::from_secs(10);
    while rotation::view(
        &r,
        &rotation::workflow::collect_evidence(&store, &r).unwrap(),
        Utc::now(),
    )
    .refused_reason
    .is_some()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        rotation::next(&env, &id, false, Utc::now())
            .unwrap()
            .rotation
            .state,
        RotationState::Verified
    );
    let revoked = rotation::next(&env, &id, false, Utc::now()).unwrap();
    assert_eq!(revoked.rotation.state, RotationState::Revoked);
    assert!(
        revoked.summary.iter().any(|l| l.contains("published CRL")),
        "{:?}",
        revoked.summary
    );

    // The old certificate is refused on a new connection (CRL in the handshake, or 401
    // cert_revoked before the TLS config is rebuilt); the new one keeps working.
    let refused = eventually(Duration::from_secs(5), || async {
        let fresh = mtls_client(&root_pem, &old_identity, &g);
        matches!(mtls_call(&fresh, &g).await, 0 | 401)
    })
    .await;
    assert!(refused, "the old certificate is refused after revoke");
    assert_eq!(
        mtls_call(&mtls_client(&root_pem, &new_identity, &g), &g).await,
        200
    );
    assert!(
        botgate::store::wait(store.issuing_ca())
            .unwrap()
            .unwrap()
            .crl_der
            .is_some(),
        "a CRL was issued"
    );

    let out = rotation::rotated_out(&store).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key, old.record.fingerprint_sha256);
    assert_eq!(out[0].serial.as_deref(), Some(old.record.serial.as_str()));
}

/// When the old certificate came from another CA, the new chain must be trusted by every app
/// that admits the old certificate before anything is issued.
#[test]
fn a_changed_issuing_ca_must_be_trusted_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    botgate::pki::init_ca(
        &store,
        &CaInitOptions {
            name: "botgate Root CA".into(),
            key: KeyAlgorithm::EcdsaP256,
            root_key_out: None,
            now: Utc::now(),
        },
    )
    .unwrap();
    let old = botgate::pki::issue_client_cert(
        &store,
        &ClientCertRequest {
            common_name: CN,
            csr: None,
            days: 30,
            key: KeyAlgorithm::EcdsaP256,
            now: Utc::now(),
        },
    )
    .unwrap();
    // Pretend another CA issued it (e.g. the intermediate was replaced since).
    rusqlite::Connection::open(store.file().unwrap())
        .unwrap()
        .execute(
            "UPDATE certs SET ca_id = NULL WHERE id = ?1",
            [old.record.id],
        )
        .unwrap();
    let policy = dir.path().join("policy.toml");
    let env = RotationEnv {
        store: &store,
        policy_file: &policy,
        state_dir: dir.path(),
    };
    let opts = StartOptions {
        quiet_period: chrono::Duration::hours(1),
        min_requests: 1,
        secret_out: None,
        cert_out: Some(dir.path().to_path_buf()),
        now: Utc::now(),
    };
    let upstream = "http://127.0.0.1:9";
    std::fs::write(
        &policy,
        POLICY
            .replace("{upstream}", upstream)
            .replace("botgate Root CA", "Corporate Device CA"),
    )
    .unwrap();
    let err = rotation::start_cert(&env, CN, &opts).unwrap_err();
    assert!(
        matches!(&err, RotationError::Conflict(m) if m.contains("app \"devices\" trusts only")),
        "{err}"
    );
    assert_eq!(
        botgate::store::wait(store.list_certs()).unwrap().len(),
        1,
        "nothing issued"
    );

    std::fs::write(&policy, POLICY.replace("{upstream}", upstream)).unwrap();
    let started = rotation::start_cert(&env, CN, &opts).unwrap();
    assert!(
        started
            .notes
            .iter()
            .any(|n| n.contains("checked that the apps trust it")),
        "{:?}",
        started.notes
    );
}
