//! Policy hot reload: on a change of the policy file, compile it and swap it into the gate (and
//! its TLS configs) and the detectors' expected countries together, or keep the last good
//! policy. Either way the outcome is one admin event through the audit writer
//! (`policy_reload` / `policy_reload_rejected`: the file, the console's Log view, sinks,
//! `/metrics`, `/events`) and, for `serve`, one report on stderr.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::audit::{AccessEvent, AuditSink};
use crate::clock::SharedClock;
use crate::config::watch::Reload;
use crate::config::{ConfigError, PolicyFile};
use crate::detect::ExpectedCountries;
use crate::gate::PolicyReloader;

/// Where a reload outcome is shown besides its admin event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadReport {
    /// `serve`: one line per outcome on stderr (a rejection with its errors and warnings).
    Stderr,
    /// A console owns the terminal: its Log view shows the admin event.
    Console,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new policy is live for this many apps.
    Applied { apps: usize },
    /// The file was rejected (the message lists every error); the last good policy stays.
    Rejected(String),
}

/// The policy the gate runs, as the in-process console shows it: the file last applied and,
/// when a later edit was rejected, why (one line).
#[derive(Debug, Clone, Default)]
pub struct LivePolicy {
    pub file: Option<Arc<PolicyFile>>,
    pub rejected: Option<String>,
}

/// What a reload acts on.
pub(super) struct ReloadTarget {
    pub live: watch::Sender<LivePolicy>,
    pub gate: PolicyReloader,
    pub countries: mpsc::UnboundedSender<ExpectedCountries>,
    pub audit: AuditSink,
    pub clock: SharedClock,
    pub report: ReloadReport,
}

/// The watcher and the task applying its reloads.
pub(super) struct ReloadTask {
    path: PathBuf,
    target: Arc<ReloadTarget>,
    task: tokio::task::JoinHandle<()>,
    _watch: crate::config::watch::WatchHandle,
}

impl ReloadTask {
    pub(super) fn start(path: PathBuf, target: ReloadTarget) -> Result<ReloadTask, String> {
        let (tx, mut rx) = mpsc::channel(4);
        let watch = crate::config::watch::watch(path.clone(), tx)
            .map_err(|e| format!("cannot watch the policy file for changes: {e}"))?;
        let target = Arc::new(target);
        let t = target.clone();
        let task = tokio::spawn(async move {
            while let Some(reload) = rx.recv().await {
                t.apply(reload);
            }
        });
        Ok(ReloadTask {
            path,
            target,
            task,
            _watch: watch,
        })
    }

    /// Read and apply the file now.
    pub(super) fn reload_now(&self) -> ReloadOutcome {
        let reload = match crate::config::load(&self.path) {
            Ok(cfg) => Reload::Loaded(cfg),
            Err(e) => Reload::Rejected(e),
        };
        self.target.apply(reload)
    }

    pub(super) fn stop(self) {
        self.task.abort();
    }
}

impl ReloadTarget {
    fn apply(&self, reload: Reload) -> ReloadOutcome {
        let outcome = match reload {
            Reload::Loaded(cfg) => match crate::policy::compile(&cfg.file) {
                Ok(policies) => match self.gate.reload(policies) {
                    Err(why) => {
                        self.reject(why.clone());
                        ReloadOutcome::Rejected(why)
                    }
                    Ok(()) => {
                        // Sent only with the policy it belongs to, so the two never disagree.
                        let _ = self
                            .countries
                            .send(ExpectedCountries::from_policy(&cfg.file));
                        let apps = cfg.file.app.len();
                        self.live.send_replace(LivePolicy {
                            file: Some(Arc::new(cfg.file)),
                            rejected: None,
                        });
                        ReloadOutcome::Applied { apps }
                    }
                },
                Err(e) => {
                    self.reject(e.to_string());
                    ReloadOutcome::Rejected(e.to_string())
                }
            },
            Reload::Rejected(e) => {
                self.reject(e.first_error_line());
                ReloadOutcome::Rejected(describe_rejection(&e))
            }
        };
        self.record(&outcome);
        if self.report == ReloadReport::Stderr {
            match &outcome {
                ReloadOutcome::Applied { apps } => eprintln!("policy file reloaded ({apps} apps)"),
                ReloadOutcome::Rejected(why) => {
                    eprintln!("policy file change rejected, keeping the last good policy: {why}")
                }
            }
        }
        outcome
    }

    /// Keep the last good policy, saying why the edit was not taken.
    fn reject(&self, why: String) {
        self.live.send_modify(|live| live.rejected = Some(why));
    }

    /// The outcome as an admin event, through the one writer (and so the bus).
    fn record(&self, outcome: &ReloadOutcome) {
        let now = self.clock.now();
        let ev = match outcome {
            ReloadOutcome::Applied { apps } => AccessEvent::admin(
                now,
                "policy_reload",
                "policy",
                serde_json::json!({ "apps": apps }),
            ),
            ReloadOutcome::Rejected(why) => {
                let mut ev = AccessEvent::admin(
                    now,
                    "policy_reload_rejected",
                    "policy",
                    serde_json::json!({ "error": why }),
                );
                ev.allowed = false;
                ev
            }
        };
        if self.audit.record(ev).is_err() {
            tracing::warn!("the audit log refused the policy reload event");
        }
    }
}

/// A rejected file: its message (every error, once) and then its warnings.
pub fn describe_rejection(e: &ConfigError) -> String {
    let mut text = e.to_string();
    for f in e.findings().iter().filter(|f| !f.is_error()) {
        text.push_str(&format!("\n  {f}"));
    }
    text
}
