//! The rotation wizard in the console: snapshots of the Rotations view at each step (views built
//! by the rotation library's pure `view` from hand-made rotations and evidence, fixed clock, no
//! store), and the keys: `r` queues a start, a revoke needs the name typed exactly, abort asks
//! y/n, and a read-only console (or one without a store) queues nothing and says why.

use std::collections::BTreeMap;

use botgate::console::actions::{self, ConsoleAction};
use botgate::console::aggregate::Limits;
use botgate::console::theme::Theme;
use botgate::console::wizard::Prompt;
use botgate::console::{AppState, CertRow, HeaderInfo, Msg, RotationRow, TokenRow, bench, update};
use botgate::rotation::evidence::{ClientTraffic, CredentialTraffic, Evidence, Which};
use botgate::rotation::{
    CredentialKind, CredentialRef, PolicyRef, Rotation, RotationDetails, RotationState,
};
use chrono::{DateTime, Duration, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn at(mins_ago: i64) -> DateTime<Utc> {
    now() - Duration::minutes(mins_ago)
}

fn policy() -> PolicyRef {
    PolicyRef {
        app: "api.example.com".into(),
        policy: "CI deployment".into(),
    }
}

/// A token rotation `ci-deploy-prod` → `ci-deploy-prod-v2` in `state`, steps done 10 min apart.
fn rotation(state: RotationState) -> Rotation {
    let reached = |s: RotationState| {
        use RotationState::*;
        let order = [Created, Added, RollingOut, Verified, Revoked];
        let pos = |x| order.iter().position(|o| *o == x);
        pos(state).unwrap_or(0) >= pos(s).unwrap_or(usize::MAX)
    };
    Rotation {
        id: "rot-4f2a9c".into(),
        kind: CredentialKind::Token,
        state,
        old: CredentialRef {
            key: "3f9a0c11d2e4b5a6c7d8e9f0a1b2c3d4.access".into(),
            name: "ci-deploy-prod".into(),
            serial: None,
            secret_version: None,
            expires_at: Some(now() + Duration::days(200)),
        },
        new: Some(CredentialRef {
            key: "9b8a7c6d5e4f30211203948576a5b4c3.access".into(),
            name: "ci-deploy-prod-v2".into(),
            serial: None,
            secret_version: None,
            expires_at: Some(now() + Duration::days(365)),
        }),
        quiet_period: Duration::minutes(5),
        min_requests: 1,
        forced: false,
        details: RotationDetails {
            audit_log: "/var/lib/botgate/audit.jsonl".into(),
            policy_file: "/etc/botgate/policy.toml".into(),
            intended_policies: vec![policy()],
            edited_policies: vec![policy()],
            new_credential_files: vec!["/var/lib/botgate/secrets/ci-deploy-prod-v2.json".into()],
            added_at: reached(RotationState::Added).then(|| at(40)),
            rollout_started_at: reached(RotationState::RollingOut).then(|| at(30)),
            verified_at: reached(RotationState::Verified).then(|| at(2)),
            revoked_at: reached(RotationState::Revoked).then(|| at(1)),
            ..Default::default()
        },
        created_at: at(50),
        updated_at: at(1),
    }
}

fn traffic(requests: u64, last: DateTime<Utc>, ip: &str) -> CredentialTraffic {
    let mut allowed_by_policy = BTreeMap::new();
    allowed_by_policy.insert(policy(), requests);
    CredentialTraffic {
        requests,
        allowed: requests,
        denied: 0,
        first_seen: Some(at(29)),
        last_seen: Some(last),
        last_ip: Some(ip.into()),
        last_user_agent: Some("ci-runner/2.1".into()),
        allowed_by_policy,
        deny_reasons: BTreeMap::new(),
        last_seen_elsewhere: false,
    }
}

/// A staggered rollout: two runners switched, one (127.0.2.7) still on the old token 3 s ago.
fn rollout_evidence(straggler_secs_ago: i64) -> Evidence {
    let straggler = now() - Duration::seconds(straggler_secs_ago);
    let client = |ip: &str, which, old, new, last| ClientTraffic {
        ip: ip.into(),
        last_credential: which,
        last_seen: last,
        old_requests: old,
        new_requests: new,
        user_agent: Some("ci-runner/2.1".into()),
    };
    let mut clients = BTreeMap::new();
    for c in [
        client(
            "127.0.2.5",
            Which::New,
            40,
            112,
            now() - Duration::seconds(1),
        ),
        client(
            "127.0.2.6",
            Which::New,
            38,
            97,
            now() - Duration::seconds(2),
        ),
        client("127.0.2.7", Which::Old, 14, 0, straggler),
    ] {
        clients.insert(c.ip.clone(), c);
    }
    Evidence {
        old: traffic(92, straggler, "127.0.2.7"),
        new: traffic(209, now() - Duration::seconds(1), "127.0.2.5"),
        clients,
        ..Default::default()
    }
}

fn row(r: &Rotation, ev: &Evidence) -> RotationRow {
    RotationRow {
        view: botgate::rotation::view(r, ev, now()),
        old_name: r.old.name.clone(),
    }
}

fn token(name: &str) -> TokenRow {
    TokenRow {
        name: name.into(),
        client_id: format!("{:0>32}.access", name.len()),
        created_at: now() - Duration::days(100),
        expires_at: now() + Duration::days(200),
        revoked: false,
        disabled: false,
        last_seen_at: None,
        policies: vec!["api.example.com / CI deployment".into()],
        rotation_due_at: now() - Duration::days(10),
        bounds: Default::default(),
    }
}

/// A console with a store behind it (actions available), not read-only.
fn state(rotations: Vec<RotationRow>) -> AppState {
    let header = HeaderInfo {
        listen: vec!["http://127.0.0.1:8080".into()],
        source: "in-process bus".into(),
        read_only: false,
        ..HeaderInfo::default()
    };
    let mut s = AppState::new(Theme::default(), header, Limits::default(), at(62));
    s.actions_available = true;
    update(&mut s, Msg::Tick(now()));
    update(
        &mut s,
        Msg::Inventory {
            tokens: vec![token("backup-cron-prod"), token("ci-deploy-prod")],
            certs: vec![CertRow {
                common_name: "device-0001.factory.corp".into(),
                issuer: "botgate Device CA".into(),
                serial: "3f9a0c11d2e4b5a6".into(),
                fingerprint_sha256: "ab".repeat(32),
                not_after: now() + Duration::days(300),
                key_type: "ecdsa-p256".into(),
                revoked: false,
                last_seen_at: None,
                source: "store".into(),
                rotation_due_at: now() + Duration::days(300),
                policies: Vec::new(),
            }],
            store_error: None,
        },
    );
    update(&mut s, Msg::Rotations(rotations));
    update(&mut s, Msg::Resize(160, 45));
    s
}

fn key(s: &mut AppState, code: KeyCode) {
    update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn typed(s: &mut AppState, text: &str) {
    for c in text.chars() {
        key(s, KeyCode::Char(c));
    }
}

fn draw(s: &AppState, w: u16, h: u16) -> String {
    let b = bench::render(s, w, h);
    let mut out = String::new();
    for y in 0..b.area.height {
        for x in 0..b.area.width {
            out.push_str(b[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn wizard_at(state: RotationState, ev: &Evidence) -> AppState {
    let mut s = state_with(vec![row(&rotation(state), ev)]);
    key(&mut s, KeyCode::Char('6'));
    s
}

fn state_with(rotations: Vec<RotationRow>) -> AppState {
    state(rotations)
}

#[test]
fn snapshot_each_wizard_step() {
    let quiet = Evidence::default();
    let s = wizard_at(RotationState::Created, &quiet);
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("create ✓ → add ● → rollout → verify → revoke"),
        "{text}"
    );
    insta::assert_snapshot!("wizard_created", text);

    let s = wizard_at(RotationState::Added, &quiet);
    insta::assert_snapshot!("wizard_added", draw(&s, 160, 45));

    // Rolling out with a straggler: verify would be refused, and the panel says why and who.
    let s = wizard_at(RotationState::RollingOut, &rollout_evidence(3));
    let text = draw(&s, 160, 45);
    assert!(text.contains("rollout ✓ → verify ●"), "{text}");
    assert!(
        text.contains("refused now:") && text.contains("127.0.2.7"),
        "{text}"
    );
    insta::assert_snapshot!("wizard_rolling_out", text);

    // The straggler switched 10 minutes ago: quiet for longer than the 5 min period.
    let s = wizard_at(RotationState::Verified, &rollout_evidence(600));
    let text = draw(&s, 160, 45);
    assert!(text.contains("n  (type the name)"), "{text}");
    assert!(!text.contains("refused now:"), "{text}");
    insta::assert_snapshot!("wizard_verified", text);

    let mut revoked = rotation(RotationState::Revoked);
    revoked.forced = true;
    let mut s = state_with(vec![row(&revoked, &rollout_evidence(600))]);
    key(&mut s, KeyCode::Char('6'));
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("revoked (forced)") && text.contains("nothing left"),
        "{text}"
    );
    insta::assert_snapshot!("wizard_revoked_forced", text);
}

#[test]
fn snapshot_a_refused_step_and_the_small_terminal() {
    let mut s = wizard_at(RotationState::RollingOut, &rollout_evidence(3));
    key(&mut s, KeyCode::Char('n'));
    assert_eq!(
        s.pending_actions,
        [ConsoleAction::Next {
            id: "rot-4f2a9c".into(),
            force: false
        }]
    );
    s.pending_actions.clear();
    update(
        &mut s,
        Msg::ActionResult(Err(
            "refused: old credential seen 92 times, last 3s ago from 127.0.2.7".into(),
        )),
    );
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("last action: refused: old credential seen 92 times"),
        "{text}"
    );
    insta::assert_snapshot!("wizard_refused", text);
    insta::assert_snapshot!("wizard_refused_80x24", draw(&s, 80, 24));
}

#[test]
fn r_on_a_token_or_cert_queues_a_start() {
    let mut s = state(Vec::new());
    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Char('j'));
    let shown = botgate::console::rows::tokens(&s)[1].name.clone();
    key(&mut s, KeyCode::Char('r'));
    // A token asks how: the footer offers the same Client ID or a new one.
    assert!(s.pending_actions.is_empty());
    let asked = draw(&s, 160, 45);
    assert!(
        asked.contains("[s] same Client ID") && asked.contains("[n] new Client ID"),
        "{asked}"
    );
    key(&mut s, KeyCode::Char('s'));
    assert_eq!(
        s.pending_actions,
        [ConsoleAction::StartToken {
            name: shown.clone(),
            in_place: true
        }]
    );
    s.pending_actions.clear();
    key(&mut s, KeyCode::Char('r'));
    key(&mut s, KeyCode::Char('n'));
    assert_eq!(
        s.pending_actions,
        [ConsoleAction::StartToken {
            name: shown,
            in_place: false
        }]
    );
    assert!(
        draw(&s, 160, 45).contains("r rotate"),
        "footer hint on tokens"
    );

    s.pending_actions.clear();
    key(&mut s, KeyCode::Char('3'));
    key(&mut s, KeyCode::Char('r'));
    assert_eq!(
        s.pending_actions,
        [ConsoleAction::StartCert {
            serial: "3f9a0c11d2e4b5a6".into(),
            cn: "device-0001.factory.corp".into(),
            new_cn: None,
        }]
    );

    s.pending_actions.clear();
    key(&mut s, KeyCode::Char('1'));
    key(&mut s, KeyCode::Char('r'));
    assert!(s.pending_actions.is_empty(), "nothing to rotate in traffic");
}

#[test]
fn revoke_needs_the_name_typed_exactly() {
    let mut s = wizard_at(RotationState::RollingOut, &rollout_evidence(3));
    key(&mut s, KeyCode::Char('R'));
    assert!(matches!(s.prompt, Some(Prompt::TypeName { .. })));
    typed(&mut s, "ci-deploy-pro");
    assert!(draw(&s, 160, 45).contains("type its name to confirm: ci-deploy-pro█"));
    key(&mut s, KeyCode::Enter);
    assert!(s.pending_actions.is_empty(), "a wrong name revokes nothing");
    assert!(s.prompt.is_none());
    assert!(s.feed.notice.as_deref().unwrap().contains("not revoked"));

    // Keys bound elsewhere (q, n, x) are text while typing; Backspace deletes.
    key(&mut s, KeyCode::Char('R'));
    typed(&mut s, "ci-deploy-prodx");
    key(&mut s, KeyCode::Backspace);
    assert!(!s.should_quit);
    key(&mut s, KeyCode::Enter);
    assert_eq!(
        s.pending_actions,
        [ConsoleAction::Next {
            id: "rot-4f2a9c".into(),
            force: true
        }]
    );

    // Esc cancels.
    s.pending_actions.clear();
    key(&mut s, KeyCode::Char('R'));
    typed(&mut s, "ci-deploy-prod");
    key(&mut s, KeyCode::Esc);
    assert!(s.pending_actions.is_empty() && s.prompt.is_none());
}

#[test]
fn next_on_a_verified_rotation_asks_for_the_name() {
    let mut s = wizard_at(RotationState::Verified, &rollout_evidence(600));
    key(&mut s, KeyCode::Char('n'));
    assert!(s.pending_actions.is_empty());
    assert!(matches!(&s.prompt, Some(Prompt::TypeName { name, .. }) if name == "ci-deploy-prod"));
}

#[test]
fn revoke_before_add_is_not_offered() {
    let mut s = wizard_at(RotationState::Created, &Evidence::default());
    key(&mut s, KeyCode::Char('R'));
    assert!(s.prompt.is_none() && s.pending_actions.is_empty());
    assert!(
        s.feed
            .notice
            .as_deref()
            .unwrap()
            .contains("lock every client out")
    );
}

#[test]
fn abort_asks_yes_or_no() {
    let mut s = wizard_at(RotationState::Added, &Evidence::default());
    key(&mut s, KeyCode::Char('x'));
    assert!(draw(&s, 160, 45).contains("abort rot-4f2a9c?"));
    key(&mut s, KeyCode::Char('n'));
    assert!(
        s.prompt.is_none() && s.pending_actions.is_empty(),
        "n says no"
    );
    key(&mut s, KeyCode::Char('x'));
    key(&mut s, KeyCode::Char('q'));
    assert!(
        !s.should_quit && s.prompt.is_some(),
        "other keys wait for y/n"
    );
    key(&mut s, KeyCode::Char('y'));
    assert_eq!(
        s.pending_actions,
        [ConsoleAction::Abort {
            id: "rot-4f2a9c".into()
        }]
    );
}

#[test]
fn read_only_blocks_every_action_and_says_so() {
    let mut s = wizard_at(RotationState::RollingOut, &rollout_evidence(3));
    s.header.read_only = true;
    for k in ['n', 'R', 'x'] {
        key(&mut s, KeyCode::Char(k));
        assert!(s.prompt.is_none() && s.pending_actions.is_empty(), "{k}");
        assert_eq!(s.feed.notice.as_deref(), Some(actions::READ_ONLY));
    }
    let text = draw(&s, 160, 45);
    assert!(text.contains("READ-ONLY") && text.contains("rotation actions are disabled"));
    assert!(
        !text.contains("n next step") && !text.contains("x abort"),
        "{text}"
    );
    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Char('r'));
    assert!(s.pending_actions.is_empty());
    assert!(!draw(&s, 160, 45).contains("r rotate"));
}

#[test]
fn without_a_store_the_keys_say_what_is_needed() {
    let mut s = wizard_at(RotationState::RollingOut, &rollout_evidence(3));
    s.actions_available = false;
    key(&mut s, KeyCode::Char('n'));
    assert!(s.pending_actions.is_empty());
    assert_eq!(s.feed.notice.as_deref(), Some(actions::NO_STORE));
}
