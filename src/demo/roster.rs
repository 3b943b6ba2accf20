//! Who the demo's bots are: CI runners, a cron probe, a leaked token used from abroad, a runaway
//! script, a shared token, a client of a revoked token, scanners, credential stuffing, and (with
//! mTLS) the device fleet. Source blocks map to countries through the demo geo table:
//! 127.0.0.x/127.0.1.x US, 127.0.2.x DE, 127.0.3.x SG, 127.0.4.x VN, 127.0.5.x RU, 127.0.6.x BR.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;

use super::bots::{BotAuth, BotSpec, Schedule};
use super::pki::DeviceSlot;
use super::scenario::source_ip;

const GH_RUNNER: &str = "GitHub-Actions-Runner/2.319.1";
const GH_RUNNER_OLD: &str = "GitHub-Actions-Runner/2.280.3";
/// The straggler's image is older than the fleet's, so its user agent tells it apart.
const GH_RUNNER_STALE: &str = "GitHub-Actions-Runner/2.311.0";
const CURL: &str = "curl/8.5.0";
const PY_REQUESTS: &str = "python-requests/2.32.3";
const BLACKBOX: &str = "prometheus-blackbox/0.25.0";

/// Inputs the roster needs.
#[derive(Debug)]
pub struct RosterInputs<'a> {
    /// Credential file per token name.
    pub token_files: &'a BTreeMap<String, PathBuf>,
    /// Client id per token name.
    pub client_ids: &'a BTreeMap<String, String>,
    /// Whether 127.0.x.y source addresses can be bound (see `scenario::loopback_aliases_work`).
    pub aliases: bool,
    /// Devices with certificates (empty without mTLS).
    pub devices: &'a [DeviceSlot],
    /// The OIDC deploy job's token file (from the demo's local issuer).
    pub oidc_token: Option<PathBuf>,
}

/// The demo's bots, in summary order.
pub fn demo_roster(inp: &RosterInputs<'_>) -> Vec<BotSpec> {
    let ip = |block: u8, host: u8| source_ip(inp.aliases, block, host);
    let token = |name: &str, reread: bool| BotAuth::TokenFile {
        path: inp.token_files.get(name).cloned().unwrap_or_default(),
        reread,
    };
    let every = |secs: f64, jitter: f64| Schedule::Every {
        interval: Duration::from_secs_f64(secs),
        jitter,
        first_at: None,
    };
    let deploy = reqs(&[
        (Method::GET, "/v1/releases/latest"),
        (Method::POST, "/v1/deployments"),
        (Method::GET, "/v1/deployments/status"),
    ]);
    let mut bots = vec![
        bot(
            "ci-deploy-prod runner-1",
            "api.demo.local",
            deploy.clone(),
            vec![ip(1, 10)],
            &[GH_RUNNER],
            token("ci-deploy-prod", true),
            every(4.0, 0.25),
        ),
        // An old runner image with the token baked in: never picks up a rotated credential.
        bot(
            "ci-deploy-prod runner-2 (straggler)",
            "api.demo.local",
            deploy.clone(),
            vec![ip(1, 11)],
            &[GH_RUNNER_STALE],
            token("ci-deploy-prod", false),
            every(6.0, 0.25),
        ),
        bot(
            "ci-deploy-staging runner",
            "api.demo.local",
            deploy,
            vec![ip(1, 20)],
            &[GH_RUNNER],
            token("ci-deploy-staging", true),
            every(5.0, 0.25),
        ),
        // The staging token leaked through CI logs and is tried from abroad now and then.
        bot(
            "ci-deploy-staging leaked (RU)",
            "api.demo.local",
            reqs(&[
                (Method::GET, "/v1/secrets"),
                (Method::GET, "/v1/users"),
                (Method::GET, "/v1/deployments"),
            ]),
            vec![ip(5, 66)],
            &[PY_REQUESTS],
            token("ci-deploy-staging", false),
            Schedule::Every {
                interval: Duration::from_secs(20),
                jitter: 0.3,
                first_at: Some(Duration::from_secs(3)),
            },
        ),
        bot(
            "monitoring-probe-prod",
            "status.demo.local",
            reqs(&[(Method::GET, "/api/status")]),
            vec![ip(2, 5)],
            &[BLACKBOX],
            token("monitoring-probe-prod", true),
            every(2.0, 0.05),
        ),
        bot(
            "lb health check",
            "status.demo.local",
            reqs(&[(Method::GET, "/healthz")]),
            vec![ip(0, 2)],
            &["ELB-HealthChecker/2.0"],
            BotAuth::Anonymous,
            every(1.0, 0.0),
        ),
        // A backup script stuck in a retry loop: hundreds of requests per second for ~10 s.
        bot(
            "backup-cron-prod (runaway)",
            "api.demo.local",
            reqs(&[
                (Method::POST, "/v1/backups"),
                (Method::GET, "/v1/backups/latest"),
            ]),
            vec![ip(1, 30)],
            &[PY_REQUESTS],
            token("backup-cron-prod", true),
            Schedule::Spiky {
                base: Duration::from_secs(10),
                burst_rate: 300.0,
                burst_len: Duration::from_secs(10),
                first_burst_at: Duration::from_secs(12),
                burst_every: Duration::from_secs(60),
            },
        ),
        bot(
            "etl-nightly-prod",
            "api.demo.local",
            reqs(&[(Method::GET, "/v1/exports?since=24h")]),
            vec![ip(2, 40)],
            &["Apache-Airflow/2.10.2 python-requests/2.32.3"],
            token("etl-nightly-prod", true),
            every(8.0, 0.2),
        ),
        // One token for every CI job: many addresses, many clients.
        bot(
            "ci-shared-dev (shared)",
            "api.demo.local",
            reqs(&[
                (Method::GET, "/v1/artifacts/cache"),
                (Method::PUT, "/v1/artifacts/cache"),
            ]),
            (100..124).map(|h| ip(1, h)).collect(),
            &[
                GH_RUNNER,
                CURL,
                PY_REQUESTS,
                "Go-http-client/1.1",
                "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
            ],
            token("ci-shared-dev", true),
            every(1.5, 0.3),
        ),
        bot(
            "ci-legacy-prod (revoked)",
            "api.demo.local",
            reqs(&[(Method::POST, "/v1/deployments")]),
            vec![ip(1, 40)],
            &[GH_RUNNER_OLD],
            token("ci-legacy-prod", false),
            Schedule::Every {
                interval: Duration::from_secs(6),
                jitter: 0.2,
                first_at: Some(Duration::from_secs(1)),
            },
        ),
        bot(
            "scanner (RU/BR)",
            "api.demo.local",
            reqs(&[
                (Method::GET, "/.env"),
                (Method::GET, "/wp-login.php"),
                (Method::GET, "/admin"),
                (Method::GET, "/.git/config"),
                (Method::GET, "/api/v1/users"),
            ]),
            (10..20)
                .map(|h| ip(5, h))
                .chain((10..15).map(|h| ip(6, h)))
                .collect(),
            &[
                "Mozilla/5.0 zgrab/0.x",
                "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
                "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
            ],
            BotAuth::Anonymous,
            Schedule::Every {
                interval: Duration::from_secs(3),
                jitter: 0.5,
                first_at: Some(Duration::from_millis(500)),
            },
        ),
        bot(
            "scanner (unknown host)",
            "admin.demo.local",
            reqs(&[(Method::GET, "/"), (Method::GET, "/login")]),
            vec![ip(6, 20)],
            &[CURL],
            BotAuth::Anonymous,
            every(10.0, 0.3),
        ),
    ];
    // A deploy job with a workload identity token: no stored secret (see demo/issuer.rs).
    if let Some(path) = &inp.oidc_token {
        bots.insert(
            3,
            bot(
                "ci-oidc-deploy (workload identity)",
                "api.demo.local",
                reqs(&[
                    (Method::GET, "/v1/releases/latest"),
                    (Method::POST, "/v1/deployments"),
                ]),
                vec![ip(1, 40)],
                &[GH_RUNNER],
                BotAuth::OidcTokenFile { path: path.clone() },
                every(5.0, 0.25),
            ),
        );
    }
    if let Some(id) = inp.client_ids.get("ci-deploy-prod") {
        bots.push(bot(
            "credential stuffing (BR)",
            "api.demo.local",
            reqs(&[(Method::POST, "/v1/deployments")]),
            (30..34).map(|h| ip(6, h)).collect(),
            &[PY_REQUESTS],
            BotAuth::GuessedSecret {
                client_id: id.clone(),
            },
            every(7.0, 0.3),
        ));
    }
    for (i, d) in inp.devices.iter().enumerate() {
        // Alternate the factories: even devices in Singapore, odd ones in Vietnam.
        let source = if i % 2 == 0 {
            ip(3, 10 + i as u8)
        } else {
            ip(4, 10 + i as u8)
        };
        bots.push(bot(
            &d.common_name,
            "devices.demo.local",
            reqs(&[(Method::POST, "/v1/telemetry"), (Method::GET, "/v1/config")]),
            vec![source],
            &["factory-agent/3.4.1 (linux; arm64)"],
            BotAuth::CertFile {
                path: d.credential_file.clone(),
                reread: true,
            },
            every(3.0, 0.3),
        ));
    }
    bots
}

fn reqs(list: &[(Method, &str)]) -> Vec<(Method, String)> {
    list.iter()
        .map(|(m, p)| (m.clone(), (*p).to_string()))
        .collect()
}

fn bot(
    name: &str,
    host: &str,
    requests: Vec<(Method, String)>,
    sources: Vec<IpAddr>,
    user_agents: &[&str],
    auth: BotAuth,
    schedule: Schedule,
) -> BotSpec {
    BotSpec {
        name: name.to_string(),
        host: host.to_string(),
        requests,
        sources,
        user_agents: user_agents.iter().map(|s| s.to_string()).collect(),
        auth,
        schedule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_uses_distinct_country_blocks_and_every_bot_is_sendable() {
        let files: BTreeMap<String, PathBuf> = super::super::scenario::DEMO_TOKENS
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    PathBuf::from(format!("/x/{}.json", t.name)),
                )
            })
            .collect();
        let ids = BTreeMap::from([(
            "ci-deploy-prod".to_string(),
            "0123456789abcdef0123456789abcdef.access".to_string(),
        )]);
        let devices = vec![DeviceSlot {
            common_name: "device-0001.factory.corp".into(),
            credential_file: "/x/d1.json".into(),
        }];
        let bots = demo_roster(&RosterInputs {
            token_files: &files,
            client_ids: &ids,
            aliases: true,
            devices: &devices,
            oidc_token: None,
        });
        let leaked = bots.iter().find(|b| b.name.contains("leaked")).unwrap();
        assert_eq!(leaked.sources[0].to_string(), "127.0.5.66");
        assert!(
            bots.iter().any(|b| b.sources.len() >= 20),
            "a shared token uses many addresses"
        );
        assert!(
            bots.iter()
                .any(|b| matches!(b.auth, BotAuth::CertFile { .. }))
        );
        for b in &bots {
            assert!(
                !b.sources.is_empty() && !b.requests.is_empty() && !b.user_agents.is_empty(),
                "{}",
                b.name
            );
            if let BotAuth::TokenFile { path, .. } = &b.auth {
                assert!(path.starts_with("/x"), "{} has no credential file", b.name);
            }
        }
        assert!(
            bots.iter()
                .any(|b| matches!(b.auth, BotAuth::TokenFile { .. })),
            "some bot uses a token file"
        );
        let plain = demo_roster(&RosterInputs {
            token_files: &files,
            client_ids: &ids,
            aliases: false,
            devices: &[],
            oidc_token: None,
        });
        assert!(
            plain
                .iter()
                .all(|b| b.sources.iter().all(|s| s.to_string() == "127.0.0.1"))
        );
        assert!(
            plain
                .iter()
                .all(|b| !matches!(b.auth, BotAuth::CertFile { .. }))
        );
    }
}
