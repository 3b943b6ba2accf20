//! The Issuers view's feed: every `ISSUERS_EVERY`, the configured `[[oidc_issuer]]`s as
//! `IssuerRow`s. In the gate's process (`demo`, `serve --console`) they are the gate's own
//! issuers, with its counters; beside a gate in another process (`botgate console`) they are
//! the policy file's issuers with what the gates wrote to `<state>/oidc/<name>.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::app::Msg;
use super::model::{IssuerCounts, IssuerRow};
use crate::clock::SharedClock;
use crate::oidc::view::IssuerView;
use crate::oidc::{IssuerSettings, Issuers};

/// How often the Issuers view is refreshed.
pub const ISSUERS_EVERY: Duration = Duration::from_secs(2);

/// Where the issuers come from.
#[derive(Debug)]
pub enum IssuerSource {
    /// The running gate's issuers (its key sets and counters).
    Live(Arc<Issuers>),
    /// The policy file's issuers and the state dir's files (a gate in another process).
    Files { policy: PathBuf, state_dir: PathBuf },
}

/// Reads the issuers; in `Files` mode re-parses the policy file only when its text changed and
/// keeps the last good issuers across a bad edit (the gate keeps its last good policy too).
#[derive(Debug)]
pub struct IssuersReader {
    source: IssuerSource,
    last_text: Option<String>,
    settings: Vec<Arc<IssuerSettings>>,
}

impl IssuersReader {
    pub fn new(source: IssuerSource) -> Self {
        Self {
            source,
            last_text: None,
            settings: Vec::new(),
        }
    }

    /// Blocking (reads files in `Files` mode): the issuers as they are at `now`.
    pub fn read(&mut self, now: DateTime<Utc>) -> Vec<IssuerRow> {
        match &self.source {
            IssuerSource::Live(issuers) => issuers
                .all()
                .iter()
                .map(|s| IssuerRow {
                    view: IssuerView::of(s, now),
                    counts: Some(IssuerCounts::of(s)),
                })
                .collect(),
            IssuerSource::Files { policy, state_dir } => {
                let (policy, state_dir) = (policy.clone(), state_dir.clone());
                self.reload_settings(&policy);
                // A fresh set each read: it takes what the gates last wrote to the state files.
                let dir = policy.parent().unwrap_or(std::path::Path::new("."));
                let issuers = Issuers::new(Some(&state_dir), dir);
                issuers.sync(&self.settings, now);
                issuers
                    .all()
                    .iter()
                    .map(|s| IssuerRow {
                        view: IssuerView::of(s, now),
                        counts: None,
                    })
                    .collect()
            }
        }
    }

    fn reload_settings(&mut self, policy: &std::path::Path) {
        // A missing file is "no policy yet": no issuers.
        let text =
            crate::input::read_to_string(policy, crate::input::POLICY_FILE).unwrap_or_default();
        if self.last_text.as_ref() == Some(&text) {
            return;
        }
        if text.is_empty() && !policy.exists() {
            self.settings.clear();
        } else if let Ok(loaded) = crate::config::parse(policy, &text)
            && let Ok(set) = crate::policy::compile(&loaded.file)
        {
            self.settings = set.issuers;
        }
        self.last_text = Some(text);
    }
}

/// Every `every`, read the issuers (in a blocking task) and send `Msg::Issuers`. Stops when the
/// console is gone.
pub fn spawn_issuers(
    source: IssuerSource,
    clock: SharedClock,
    tx: mpsc::Sender<Msg>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = Some(IssuersReader::new(source));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(mut r) = reader.take() else { return };
            let now = clock.now();
            let Ok((r, rows)) = tokio::task::spawn_blocking(move || {
                let rows = r.read(now);
                (r, rows)
            })
            .await
            else {
                return;
            };
            reader = Some(r);
            if tx.send(Msg::Issuers(rows)).await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[oidc_issuer]]
name = "ci"
issuer = "https://ci.example.test"
jwks_file = "ci-jwks.json"
audiences = ["https://api.example.test"]

[[app]]
name = "api"
hostnames = ["api.example.test"]
upstream = "http://127.0.0.1:9"

[[app.policy]]
name = "ci"
action = "service_auth"
include = [{ oidc = { issuer = "ci", claims = { repository = "example/api" } } }]
"#;

    #[test]
    fn files_mode_reads_the_policy_and_keeps_the_last_good_issuers() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, POLICY).unwrap();
        let mut r = IssuersReader::new(IssuerSource::Files {
            policy: policy.clone(),
            state_dir: dir.path().join("state"),
        });
        let rows = r.read(Utc::now());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].view.name, "ci");
        assert_eq!(rows[0].view.issuer, "https://ci.example.test");
        assert_eq!(rows[0].counts, None);
        assert_eq!(rows[0].view.age_seconds, None, "no gate fetched it yet");

        std::fs::write(&policy, "[[oidc_issuer]]\nname = ").unwrap();
        let rows = r.read(Utc::now());
        assert_eq!(rows.len(), 1, "a bad edit keeps the last good issuers");

        std::fs::remove_file(&policy).unwrap();
        assert!(r.read(Utc::now()).is_empty(), "no policy file, no issuers");
    }
}
