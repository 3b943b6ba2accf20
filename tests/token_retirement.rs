//! Retiring what nobody uses: with `[tokens] disable_after_inactive` and `disable_unreferenced`,
//! the sweep disables only the stale token and the one no policy admits, each with a
//! `token_retire` admin event that the detectors raise as `credential_retired`; `policy check`
//! lists the tokens it disables within 7 days.

mod common;

use botgate::credential::{ClientId, ClientSecret};
use botgate::store::{NewToken, Store, wait};
use chrono::{Duration, Utc};

const POLICY: &str = r#"[gate]
listen = "127.0.0.1:18081"

[tokens]
disable_after_inactive = "30d"
disable_unreferenced = "7d"

[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://127.0.0.1:9"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { service_token = "ci-stale-prod" }, { service_token = "ci-soon-prod" }]
"#;

fn token(store: &Store, name: &str, created_days_ago: i64, seen_days_ago: Option<i64>) -> String {
    let now = Utc::now();
    let id = ClientId::generate();
    wait(store.create_token(&NewToken {
        name,
        client_id: &id,
        secret_hash: ClientSecret::generate().hash(),
        created_at: now - Duration::days(created_days_ago),
        expires_at: now + Duration::days(300),
        bounds: Default::default(),
    }))
    .unwrap();
    if let Some(d) = seen_days_ago {
        wait(store.touch_tokens(&[(
            id.as_str().to_string(),
            now - Duration::days(d),
            "10.0.0.1".into(),
        )]))
        .unwrap();
    }
    id.as_str().to_string()
}

#[test]
fn the_sweep_disables_only_the_stale_and_the_unreferenced_token_with_an_event_and_an_alert() {
    let env = common::CliEnv::new();
    std::fs::write(env.path("policy.toml"), POLICY).unwrap();
    std::fs::create_dir_all(env.state()).unwrap();
    let store = Store::open(&env.state()).unwrap();
    token(&store, "ci-deploy-prod", 100, Some(1)); // used yesterday
    token(&store, "ci-stale-prod", 100, Some(40)); // unseen for 40 days
    token(&store, "ci-soon-prod", 100, Some(27)); // due in 3 days
    token(&store, "ops-orphan-prod", 10, None); // no policy admits it, created 10 days ago
    let file = botgate::config::load(&env.path("policy.toml"))
        .unwrap()
        .file;
    let policies = botgate::policy::compile(&file).unwrap();
    let retire = botgate::retire::RetirePolicy::from_section(&file.tokens).unwrap();

    // policy check says what the sweep is about to do, before it does.
    let (code, out, err) = env.run(&["policy", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ci-stale-prod: disabled at the next sweep (unseen since")
            && out.contains("ci-soon-prod: disabled in 2d 23h")
            && out.contains("ops-orphan-prod: disabled at the next sweep (no policy admits it)")
            && !out.contains("ci-deploy-prod: disabled"),
        "{out}"
    );

    let now = Utc::now();
    let done = futures::executor::block_on(botgate::retire::sweep(&store, &policies, &retire, now))
        .unwrap();
    let mut names: Vec<(String, &str)> =
        done.iter().map(|(n, r)| (n.clone(), r.as_str())).collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("ci-stale-prod".to_string(), "inactive"),
            ("ops-orphan-prod".to_string(), "unreferenced")
        ]
    );
    let tokens = wait(store.list_tokens()).unwrap();
    let disabled = |n: &str| {
        tokens
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .disabled_at
            .is_some()
    };
    assert!(disabled("ci-stale-prod") && disabled("ops-orphan-prod"));
    assert!(!disabled("ci-deploy-prod") && !disabled("ci-soon-prod"));
    // A second sweep finds nothing new.
    let again =
        futures::executor::block_on(botgate::retire::sweep(&store, &policies, &retire, now))
            .unwrap();
    assert!(again.is_empty());

    // One admin event each, and the detectors raise an alert from it.
    let events: Vec<botgate::audit::AccessEvent> = wait(store.journal_since(0))
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(&r.event_line).unwrap())
        .filter(|e: &botgate::audit::AccessEvent| e.decision == "token_retire")
        .collect();
    assert_eq!(events.len(), 2);
    let stale = events
        .iter()
        .find(|e| e.service_token_name.as_deref() == Some("ci-stale-prod"))
        .unwrap();
    assert_eq!(
        stale.details.as_ref().unwrap()["details"]["reason"],
        "inactive"
    );
    let mut engine = botgate::detect::Engine::new(Default::default());
    let alerts = engine.observe(stale);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].decision, "credential_retired");
    assert_eq!(
        alerts[0].service_token_name.as_deref(),
        Some("ci-stale-prod")
    );
    let alert = botgate::detect::Alert::from_event(&alerts[0]).unwrap();
    assert!(alert.title.contains("unused (since"), "{}", alert.title);
    assert!(engine.observe(stale).is_empty(), "one alert per token");

    // Disabled, not revoked: enable brings it back.
    let (code, _, err) = env.run(&["token", "enable", "ci-stale-prod"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_bad_retirement_period_is_refused_at_its_line() {
    let env = common::CliEnv::new();
    std::fs::write(
        env.path("policy.toml"),
        "[tokens]\ndisable_after_inactive = \"soon\"\n",
    )
    .unwrap();
    let (code, out, err) = env.run(&["policy", "check"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("policy.toml:2:") && out.contains("disable_after_inactive"),
        "{out}{err}"
    );
}
