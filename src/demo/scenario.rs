//! The demo's world before any request: tokens with realistic names and ages (one expiring in
//! 5 days, one revoked at start), their credential files, and the demo policy file patched to
//! the ephemeral upstream.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::DemoError;
use super::credentials::{CredentialFile, write_credential_file};
use crate::credential::{ClientId, ClientSecret};
use crate::store::{NewToken, Store, TokenRecord};

/// The demo policy (contract layout), embedded; `listen`/`upstream` are rewritten at start.
pub const DEMO_POLICY_TOML: &str = include_str!("../../assets/demo-policy.toml");

/// Directory (inside the state dir) of the bots' credential files.
pub const CREDENTIALS_DIR: &str = "creds";

/// One demo token: name, how long ago it was created, its lifetime, revoked at demo start.
#[derive(Debug, Clone, Copy)]
pub struct DemoToken {
    pub name: &'static str,
    pub age_days: i64,
    pub lifetime_days: i64,
    pub revoked: bool,
}

/// The demo token no bot uses.
pub const UNUSED_TOKEN: &str = "analytics-export-prod";

/// The tokens the demo creates. Ages make the inventory look lived-in: `ci-deploy-prod` is
/// close to its 90-day rotation, `etl-nightly-prod` expires in 5 days, `analytics-export-prod`
/// is never used.
pub const DEMO_TOKENS: &[DemoToken] = &[
    DemoToken {
        name: "ci-deploy-prod",
        age_days: 85,
        lifetime_days: 365,
        revoked: false,
    },
    DemoToken {
        name: "ci-deploy-staging",
        age_days: 40,
        lifetime_days: 180,
        revoked: false,
    },
    DemoToken {
        name: "ci-shared-dev",
        age_days: 300,
        lifetime_days: 365,
        revoked: false,
    },
    DemoToken {
        name: "monitoring-probe-prod",
        age_days: 20,
        lifetime_days: 365,
        revoked: false,
    },
    DemoToken {
        name: "backup-cron-prod",
        age_days: 60,
        lifetime_days: 365,
        revoked: false,
    },
    DemoToken {
        name: "etl-nightly-prod",
        age_days: 85,
        lifetime_days: 90,
        revoked: false,
    },
    DemoToken {
        name: "analytics-export-prod",
        age_days: 45,
        lifetime_days: 365,
        revoked: false,
    },
    DemoToken {
        name: "ci-legacy-prod",
        age_days: 200,
        lifetime_days: 365,
        revoked: true,
    },
];

/// Device CNs of the simulated fleet (issued only when a PKI hook is given).
pub fn device_common_names(count: usize) -> Vec<String> {
    (1..=count)
        .map(|i| format!("device-{i:04}.factory.corp"))
        .collect()
}

/// Created tokens: credential file per token name, and client ids (the stuffing bot needs one).
#[derive(Debug, Default)]
pub struct DemoCredentials {
    pub files: BTreeMap<String, PathBuf>,
    pub client_ids: BTreeMap<String, String>,
}

/// Create `DEMO_TOKENS` in the store and write each one's credential file under `creds_dir`.
/// Revoked tokens are revoked after their file is written: the client keeps presenting it.
pub fn create_tokens(
    store: &Store,
    creds_dir: &Path,
    now: DateTime<Utc>,
) -> Result<DemoCredentials, DemoError> {
    crate::store::create_private_dir(creds_dir)?;
    let mut out = DemoCredentials::default();
    for t in DEMO_TOKENS {
        let id = ClientId::generate();
        let secret = ClientSecret::generate();
        let created_at = now - Duration::days(t.age_days);
        let rec = crate::store::wait(store.create_token_recorded(
            &NewToken {
                name: t.name,
                client_id: &id,
                secret_hash: secret.hash(),
                created_at,
                expires_at: created_at + Duration::days(t.lifetime_days),
                bounds: Default::default(),
            },
            &|rec| setup_event(now, "token_create", rec),
        ))?;
        // A lived-in inventory: tokens in use were last seen an hour ago (so the "unused" rule
        // only names the one that really is unused).
        if t.name != UNUSED_TOKEN {
            crate::store::wait(store.touch_tokens(&[(
                rec.client_id.clone(),
                now - Duration::hours(1),
                "127.0.1.10".into(),
            )]))?;
        }
        let path = creds_dir.join(format!("{}.json", t.name));
        write_credential_file(
            &path,
            &CredentialFile::Token {
                name: rec.name.clone(),
                client_id: rec.client_id.clone(),
                client_secret: secret.expose().to_string(),
                expires_at: Some(
                    rec.expires_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            },
        )?;
        if t.revoked {
            crate::store::wait(store.revoke_token_recorded(&rec.client_id, now, &|rec| {
                setup_event(now, "token_revoke", rec)
            }))?;
        }
        out.files.insert(t.name.to_string(), path);
        out.client_ids.insert(t.name.to_string(), rec.client_id);
    }
    Ok(out)
}

/// A set-up admin event (journaled with the change; the runtime relays it to the audit log,
/// the console's Log view and the revoked-credential detector before the first bot sends).
fn setup_event(now: DateTime<Utc>, action: &str, rec: &TokenRecord) -> crate::store::AdminEntry {
    let mut ev = crate::audit::AccessEvent::admin(
        now,
        action,
        &rec.name,
        serde_json::json!({ "client_id": rec.client_id, "by": "botgate demo" }),
    );
    ev.service_token_name = Some(rec.name.clone());
    ev.service_token_id = Some(rec.client_id.clone());
    crate::audit::admin::entry(&ev, &rec.name)
}

/// The demo policy with `[gate] listen` on an ephemeral port, every app's `upstream` set to
/// `upstream_url`, and (with mTLS) `tls_listen` on an ephemeral port. Comments are kept.
pub fn demo_policy(
    upstream_url: &str,
    with_tls: bool,
    issuer_url: &str,
) -> Result<String, DemoError> {
    let mut doc: toml_edit::DocumentMut = DEMO_POLICY_TOML
        .parse()
        .map_err(|e| DemoError::Policy(format!("assets/demo-policy.toml: {e}")))?;
    let gate = doc["gate"]
        .or_insert(toml_edit::table())
        .as_table_mut()
        .ok_or_else(|| {
            DemoError::Policy("assets/demo-policy.toml: [gate] is not a table".into())
        })?;
    gate["listen"] = toml_edit::value("127.0.0.1:0");
    if with_tls {
        gate["tls_listen"] = toml_edit::value("127.0.0.1:0");
    }
    let apps = doc["app"]
        .as_array_of_tables_mut()
        .ok_or_else(|| DemoError::Policy("assets/demo-policy.toml: no [[app]] tables".into()))?;
    for app in apps.iter_mut() {
        app["upstream"] = toml_edit::value(upstream_url);
    }
    if let Some(issuers) = doc["oidc_issuer"].as_array_of_tables_mut() {
        for i in issuers.iter_mut() {
            i["issuer"] = toml_edit::value(issuer_url);
        }
    }
    Ok(doc.to_string())
}

/// Whether this host lets us bind 127.0.x.y source addresses other than 127.0.0.1 (Linux does
/// for all of 127/8; macOS only for configured aliases).
pub fn loopback_aliases_work() -> bool {
    std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 5, 66), 0)).is_ok()
}

/// `127.0.block.host`, or 127.0.0.1 when aliases do not work (the countries are then all US).
pub fn source_ip(aliases: bool, block: u8, host: u8) -> IpAddr {
    if aliases {
        IpAddr::V4(Ipv4Addr::new(127, 0, block, host))
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TokenStatus;

    #[test]
    fn demo_policy_parses_compiles_and_points_at_the_upstream() {
        let text = demo_policy("http://127.0.0.1:4321", false, "http://127.0.0.1:4322").unwrap();
        let file: crate::config::PolicyFile = toml::from_str(&text).unwrap();
        assert_eq!(file.gate.listen.get_ref().port(), 0);
        assert!(file.gate.tls_listen.is_none());
        assert_eq!(file.app.len(), 3);
        assert!(
            file.app
                .iter()
                .all(|a| a.upstream.get_ref() == "http://127.0.0.1:4321")
        );
        let set = crate::policy::compile(&file).unwrap();
        assert!(set.app_for_host("api.demo.local").is_some());
        assert!(set.app_for_host("devices.demo.local").is_some());
        // Comments survive the rewrite.
        assert!(text.contains("a CI token used from anywhere else is a leak"));
        let tls = demo_policy("http://127.0.0.1:4321", true, "http://127.0.0.1:4322").unwrap();
        let file: crate::config::PolicyFile = toml::from_str(&tls).unwrap();
        assert_eq!(file.gate.tls_listen.unwrap().get_ref().port(), 0);
    }

    #[test]
    fn every_demo_token_is_referenced_by_the_policy() {
        for t in DEMO_TOKENS {
            assert!(
                DEMO_POLICY_TOML.contains(&format!("service_token = \"{}\"", t.name)),
                "{} is not in assets/demo-policy.toml",
                t.name
            );
        }
    }

    #[test]
    fn tokens_are_created_with_files_one_expiring_and_one_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let creds = create_tokens(&store, &dir.path().join(CREDENTIALS_DIR), now).unwrap();
        assert_eq!(creds.files.len(), DEMO_TOKENS.len());
        let status = |n: &str| crate::store::wait(store.find_token(n)).unwrap().status(now);
        assert_eq!(status("ci-legacy-prod"), TokenStatus::Revoked);
        assert_eq!(status("etl-nightly-prod"), TokenStatus::Expiring);
        assert_eq!(status("ci-deploy-prod"), TokenStatus::Active);
        let etl = crate::store::wait(store.find_token("etl-nightly-prod")).unwrap();
        // Stored with millisecond precision: within a second of five days.
        assert!(((etl.expires_at - now).num_seconds() - 5 * 86_400).abs() <= 1);
        let file = super::super::credentials::read_credential_file(&creds.files["ci-deploy-prod"])
            .unwrap();
        assert_eq!(file.name(), "ci-deploy-prod");
    }
}
