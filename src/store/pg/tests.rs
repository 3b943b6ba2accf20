//! The PostgreSQL store against a real server (a fresh database per test): the same contract
//! the SQLite store's tests check, plus what only a shared store has (notifications, ordered
//! versions across connections, schema refusal, copy into a non-empty target).

use chrono::{Duration, Utc};

use super::testdb::TestDb;
use crate::credential::{ClientId, ClientSecret};
use crate::store::journal::WRITER_LEASE;
use crate::store::pki::{CaKind, NewCa};
use crate::store::rotations::RotationRow;
use crate::store::{
    AdminEntry, ChangeKind, Delivery, NewToken, Store, StoreError, TableRows, wait,
};

fn new_token<'a>(name: &'a str, id: &'a ClientId) -> NewToken<'a> {
    let now = Utc::now();
    NewToken {
        name,
        client_id: id,
        secret_hash: ClientSecret::generate().hash(),
        created_at: now,
        expires_at: now + Duration::days(30),
        bounds: Default::default(),
    }
}

fn entry(n: u32) -> AdminEntry {
    AdminEntry {
        at: Utc::now(),
        action: "token_create".into(),
        target: format!("t{n}"),
        details: serde_json::json!({}),
        event_line: format!("{{\"n\":{n}}}"),
    }
}

#[test]
fn tokens_follow_the_same_rules_as_on_sqlite() {
    let db = TestDb::new();
    let store = Store::connect(&db.url).unwrap();
    assert_eq!(wait(store.change_version()).unwrap(), 0);
    let (a, b) = (ClientId::generate(), ClientId::generate());
    let created = wait(store.create_token(&new_token("ci-deploy-prod", &a))).unwrap();
    assert_eq!(created.client_id, a.as_str());
    assert!(matches!(
        wait(store.create_token(&new_token("ci-deploy-prod", &b))),
        Err(StoreError::Conflict(_))
    ));
    let now = Utc::now();
    wait(store.revoke_token("ci-deploy-prod", now)).unwrap();
    assert!(matches!(
        wait(store.revoke_token("ci-deploy-prod", now)),
        Err(StoreError::Conflict(_))
    ));
    wait(store.create_token(&new_token("ci-deploy-prod", &b))).unwrap();
    assert_eq!(
        wait(store.find_token("ci-deploy-prod")).unwrap().client_id,
        b.as_str(),
        "the live one first"
    );
    assert_eq!(wait(store.list_tokens()).unwrap().len(), 2);
    // Three enforcement writes, three versions; last-seen batches are not changes.
    assert_eq!(wait(store.change_version()).unwrap(), 3);
    wait(store.touch_tokens(&[(b.as_str().into(), now, "10.0.0.2".into())])).unwrap();
    wait(store.touch_tokens(&[(
        b.as_str().into(),
        now - Duration::seconds(5),
        "10.0.0.1".into(),
    )]))
    .unwrap();
    let t = wait(store.find_token(b.as_str())).unwrap();
    assert_eq!(t.last_seen_ip.as_deref(), Some("10.0.0.2"));
    assert_eq!(wait(store.change_version()).unwrap(), 3);
    let changes = wait(store.changes_since(1, 10)).unwrap();
    assert_eq!(
        changes.iter().map(|c| c.version).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Token));
    // Disable and refresh are recorded with their admin row.
    let admin = |_: &crate::store::TokenRecord| entry(1);
    let d = wait(store.set_token_disabled("ci-deploy-prod", true, now, &admin)).unwrap();
    assert!(d.disabled_at.is_some());
    let later = now + Duration::days(60);
    let r = wait(store.set_token_expiry("ci-deploy-prod", later, &admin)).unwrap();
    assert_eq!(r.expires_at.timestamp_millis(), later.timestamp_millis());
    assert_eq!(wait(store.journal_since(0)).unwrap().len(), 2);
}

#[test]
fn a_second_process_sees_changes_and_is_notified() {
    let db = TestDb::new();
    let gate = Store::connect(&db.url).unwrap();
    let cli = Store::connect(&db.url).unwrap();
    let mut signal = gate.change_signal().expect("PostgreSQL notifies");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The listener signals once when it connects (catch-up); wait for that first.
    runtime
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), signal.changed()).await
        })
        .expect("the listener connects")
        .unwrap();
    let id = ClientId::generate();
    wait(cli.create_token(&new_token("ci-a-prod", &id))).unwrap();
    runtime
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), signal.changed()).await
        })
        .expect("a commit elsewhere is notified")
        .unwrap();
    assert_eq!(wait(gate.change_version()).unwrap(), 1);
    assert_eq!(
        wait(gate.find_token("ci-a-prod")).unwrap().client_id,
        id.as_str()
    );
}

#[test]
fn journal_rows_are_claimed_once_per_audit_file_across_processes() {
    let db = TestDb::new();
    let one = Store::connect(&db.url).unwrap();
    let two = Store::connect(&db.url).unwrap();
    wait(one.record_admin(&entry(1))).unwrap();
    wait(two.record_admin(&entry(2))).unwrap();
    let now = Utc::now();
    assert_eq!(
        wait(one.claim_journal("/a.jsonl", "gate-1", now))
            .unwrap()
            .len(),
        2
    );
    assert!(
        wait(two.claim_journal("/a.jsonl", "gate-2", now))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        wait(two.claim_journal("/b.jsonl", "gate-2", now))
            .unwrap()
            .len(),
        2
    );
    // A live lease keeps the CLI from writing; a released one lets it.
    wait(one.record_admin(&entry(3))).unwrap();
    let d = wait(two.deliver_journal("/a.jsonl", now, &mut |_| panic!("a gate relays"))).unwrap();
    assert_eq!(d.unwrap(), Delivery::GateRelays);
    wait(one.release_writer_lease("/a.jsonl", "gate-2")).unwrap();
    let stale = now + WRITER_LEASE + Duration::seconds(1);
    let failed = wait(two.deliver_journal("/a.jsonl", stale, &mut |_| {
        Err(std::io::Error::other("disk full"))
    }))
    .unwrap();
    assert!(failed.is_err(), "a failed write keeps the row pending");
    let d = wait(two.deliver_journal("/a.jsonl", stale, &mut |_| Ok(()))).unwrap();
    assert_eq!(d.unwrap(), Delivery::Written(1));
}

#[test]
fn cas_certs_and_rotations_round_trip() {
    let db = TestDb::new();
    let store = Store::connect(&db.url).unwrap();
    let now = Utc::now();
    let ca = |name: &'static str, kind, fp: &'static str| NewCa {
        name,
        kind,
        subject: name,
        fingerprint_sha256: fp,
        not_after: now + Duration::days(3650),
        cert_pem: "not pem",
        key_pem: Some("key"),
        key_type: Some("ECDSA P-256"),
        crl_path: None,
        created_at: now,
    };
    let chain = wait(store.insert_ca_chain(&[
        ca("root", CaKind::Root, "aa"),
        ca("issuing", CaKind::Intermediate, "bb"),
    ]))
    .unwrap();
    assert_eq!(chain[1].parent_id, Some(chain[0].id));
    assert!(matches!(
        wait(store.insert_ca_chain(&[ca("root", CaKind::Trusted, "cc")])),
        Err(StoreError::Conflict(_))
    ));
    wait(store.record_crl(chain[1].id, 7, b"crl", now, now + Duration::days(7))).unwrap();
    let issuing = wait(store.issuing_ca()).unwrap().unwrap();
    assert_eq!(issuing.next_crl_number, 8);
    assert_eq!(issuing.crl_der.as_deref(), Some(&b"crl"[..]));
    let bundle = wait(store.trust_bundle("root")).unwrap();
    assert_eq!(
        bundle.crls.len(),
        1,
        "the descendants' CRLs come with the root"
    );
    assert!(wait(store.root_key_on_host()).unwrap());
    let (_, key) = wait(store.take_root_key()).unwrap().unwrap();
    assert_eq!(key, "key");
    assert!(!wait(store.root_key_on_host()).unwrap());

    let row = RotationRow {
        id: "rot-1".into(),
        kind: "token".into(),
        old_ref: "ci-a".into(),
        new_ref: None,
        state: "created".into(),
        quiet_period_secs: 60,
        min_requests: 1,
        forced: false,
        details: serde_json::json!({"k": 1}),
        created_at: now,
        updated_at: now,
    };
    wait(store.insert_rotation(&row)).unwrap();
    assert!(matches!(
        wait(store.insert_rotation(&row)),
        Err(StoreError::Conflict(_))
    ));
    let mut next = row.clone();
    next.state = "added".into();
    wait(store.update_rotation(&next, "created")).unwrap();
    assert!(matches!(
        wait(store.update_rotation(&next, "created")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(wait(store.find_rotation("rot-1")).unwrap().state, "added");
}

#[test]
fn a_newer_schema_is_refused_with_both_versions_named() {
    let db = TestDb::new();
    drop(Store::connect(&db.url).unwrap());
    let admin = Store::connect(&db.url).unwrap();
    assert_eq!(wait(admin.schema_version()).unwrap(), 6);
    super::testdb::execute_sql(&db.url, "UPDATE botgate_schema SET version = 99").unwrap();
    let e = Store::connect(&db.url).unwrap_err().to_string();
    assert!(e.contains("99") && e.contains("(6)"), "{e}");
}

#[test]
fn leases_follow_the_contract() {
    let db = TestDb::new();
    crate::store::leases::contract(&Store::connect(&db.url).unwrap());
}

#[test]
fn gate_heartbeats_follow_the_contract() {
    let db = TestDb::new();
    crate::store::leases::heartbeat_contract(&Store::connect(&db.url).unwrap());
}

#[test]
fn token_bounds_follow_the_contract() {
    let db = TestDb::new();
    crate::store::tokens::bounds_contract(&Store::connect(&db.url).unwrap());
}

#[test]
fn a_copy_into_a_database_that_holds_credentials_writes_nothing() {
    let db = TestDb::new();
    let store = Store::connect(&db.url).unwrap();
    let id = ClientId::generate();
    wait(store.create_token(&new_token("ci-a-prod", &id))).unwrap();
    let tables = vec![TableRows {
        table: "rotations".into(),
        columns: vec!["id".into()],
        rows: vec![],
    }];
    let e = wait(store.import_tables(&tables)).unwrap_err().to_string();
    assert!(e.contains("is not empty") && e.contains("1 tokens"), "{e}");
}

#[test]
fn the_usage_feed_meets_the_contract() {
    let db = TestDb::new();
    crate::store::usage::contract(&Store::connect(&db.url).unwrap());
}

#[test]
fn signing_keys_and_audiences_follow_the_contract() {
    let db = TestDb::new();
    crate::store::signing_keys::contract(&Store::connect(&db.url).unwrap());
}
