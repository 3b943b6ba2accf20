//! Console actions that change something (rotation steps), requested by the pure `update` and
//! performed by a worker task with the rotation library, off the UI task (store and file I/O run
//! in `spawn_blocking`). Each answer comes back as `Msg::ActionResult`, shown as a notice.
//!
//! New token secrets are never drawn on screen: the worker writes them to
//! `<secret_dir>/<new-name>.json` (0600, via the library's `secret_out`) and the notice names
//! the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::rotation::{self, RotationEnv, RotationError, StartOptions};
use crate::store::Store;

use super::app::Msg;

/// Something the operator asked the console to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAction {
    /// Start a rotation of the token with this name: to a successor with a new Client ID
    /// (`NAME-v2`), or `in_place`: a new secret for the same Client ID.
    StartToken {
        name: String,
        in_place: bool,
    },
    /// Start a rotation of the certificate with this serial (`cn` is for messages), to the same
    /// CN or to `new_cn`.
    StartCert {
        serial: String,
        cn: String,
        new_cn: Option<String>,
    },
    /// Perform the next step; `force` revokes even when verification has not passed (the
    /// library records it as forced).
    Next {
        id: String,
        force: bool,
    },
    Abort {
        id: String,
    },
}

/// What the worker needs to perform actions: where the rotation's effects happen.
#[derive(Debug, Clone)]
pub struct ActionContext {
    pub store: Arc<Store>,
    pub policy_file: PathBuf,
    pub state_dir: PathBuf,
    /// New token secrets are written here as `<new-name>.json` (created 0700 if missing).
    pub secret_dir: PathBuf,
}

/// Said when a key asks for a change but the console has no store to change.
pub const NO_STORE: &str =
    "rotations need a store (run inside `botgate demo` or `botgate console` with --state-dir)";
/// Said when a key asks for a change in a read-only console.
pub const READ_ONLY: &str = "read-only console (--read-only): rotation actions are disabled";

/// Run actions one at a time (in order) until the action channel closes; answer each with
/// `Msg::ActionResult` on `tx`.
pub fn spawn_worker(
    ctx: ActionContext,
    quiet_period: Duration,
    clock: SharedClock,
    mut actions: mpsc::Receiver<ConsoleAction>,
    tx: mpsc::Sender<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(action) = actions.recv().await {
            let ctx = ctx.clone();
            let now = clock.now();
            let result =
                tokio::task::spawn_blocking(move || perform(&ctx, quiet_period, &action, now))
                    .await
                    .unwrap_or_else(|e| Err(format!("the action failed: {e}")));
            if tx.send(Msg::ActionResult(result)).await.is_err() {
                return;
            }
        }
    })
}

/// Blocking: perform one action and say what happened in one line (`Err`: why not).
pub fn perform(
    ctx: &ActionContext,
    quiet_period: Duration,
    action: &ConsoleAction,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    let env = RotationEnv {
        store: &ctx.store,
        policy_file: &ctx.policy_file,
        state_dir: &ctx.state_dir,
    };
    let start_opts = |secret_out: Option<PathBuf>| StartOptions {
        quiet_period,
        min_requests: 1,
        secret_out,
        cert_out: None,
        now,
    };
    match action {
        ConsoleAction::StartToken {
            name,
            in_place: true,
        } => {
            crate::store::create_private_dir(&ctx.secret_dir).map_err(|e| e.to_string())?;
            let out = ctx.secret_dir.join(format!(
                "{name}.secret-{}.json",
                now.format("%Y%m%dT%H%M%S")
            ));
            let started = rotation::start_token_in_place(
                &env,
                name,
                Duration::hours(24),
                &start_opts(Some(out)),
            )
            .map_err(|e| describe(&e))?;
            let r = &started.rotation;
            Ok(format!(
                "{} started: {} → {}, same Client ID, new secret written to {} (0600); the previous secret works for 24h; press n (nothing to edit in the policies)",
                r.id,
                r.old.label(),
                r.new.as_ref().map_or("?".into(), |n| n.label()),
                files(&started.files)
            ))
        }
        ConsoleAction::StartToken { name, .. } => {
            crate::store::create_private_dir(&ctx.secret_dir).map_err(|e| e.to_string())?;
            let out = secret_path(&ctx.store, &ctx.secret_dir, name, now);
            let started = rotation::start_token(&env, name, &start_opts(Some(out)))
                .map_err(|e| describe(&e))?;
            let r = &started.rotation;
            Ok(format!(
                "{} started: {} → {}, secret written to {} (0600); press n to add it to the policies",
                r.id,
                r.old.name,
                r.new.as_ref().map_or("?", |n| n.name.as_str()),
                files(&started.files)
            ))
        }
        ConsoleAction::StartCert { serial, cn, new_cn } => {
            let started =
                rotation::start_cert_to_cn(&env, serial, new_cn.as_deref(), &start_opts(None))
                    .map_err(|e| describe(&e))?;
            let to = new_cn
                .as_deref()
                .map_or(String::new(), |n| format!(" → {n}"));
            Ok(format!(
                "{} started for {cn}{to}: new certificate in {}; press n to check the policies",
                started.rotation.id,
                files(&started.files)
            ))
        }
        ConsoleAction::Next { id, force } => {
            let out = rotation::next(&env, id, *force, now).map_err(|e| describe(&e))?;
            let mut text = format!(
                "{}: {}{}",
                out.rotation.id,
                out.summary.join("; "),
                if out.transition.forced {
                    " (forced: recorded)"
                } else {
                    ""
                }
            );
            if let Some(b) = &out.backup {
                text.push_str(&format!(" (backup {})", b.display()));
            }
            for n in &out.notes {
                text.push_str(&format!("; {n}"));
            }
            Ok(text)
        }
        ConsoleAction::Abort { id } => {
            let out = rotation::abort(&env, id, now).map_err(|e| describe(&e))?;
            let mut text = format!("{} aborted: {}", out.rotation.id, out.summary.join("; "));
            for n in &out.notes {
                text.push_str(&format!("; {n}"));
            }
            Ok(text)
        }
    }
}

/// `<dir>/<new-name>.json` for the name the library will give the replacement (the next
/// version not held by a live token); a timestamped name if that file exists already, since a
/// secret file is never overwritten.
fn secret_path(
    store: &Store,
    dir: &Path,
    old: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> PathBuf {
    let base = crate::store::wait(store.find_token(old)).map_or(old.to_string(), |t| t.name);
    let mut name = rotation::next_version_name(&base);
    for _ in 0..100 {
        match crate::store::wait(store.find_token(&name)) {
            Ok(t) if t.revoked_at.is_none() => name = rotation::next_version_name(&name),
            _ => break,
        }
    }
    let path = dir.join(format!("{name}.json"));
    if path.exists() {
        dir.join(format!("{name}.{}.json", now.timestamp()))
    } else {
        path
    }
}

fn files(f: &[PathBuf]) -> String {
    let v: Vec<String> = f.iter().map(|p| p.display().to_string()).collect();
    v.join(", ")
}

/// A refusal with its reason and first evidence lines, on one line for the header.
fn describe(e: &RotationError) -> String {
    match e {
        // The hint names CLI commands; the wizard panel shows what to do instead.
        RotationError::Refused(r) => format!("refused: {}", r.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::feed::RotationsReader;
    use crate::credential::{ClientId, ClientSecret};

    const POLICY: &str = r#"# keep this comment
[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://127.0.0.1:1"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

    #[test]
    fn start_writes_the_secret_to_a_file_and_next_adds_the_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        crate::store::wait(store.create_token(&crate::store::NewToken {
            name: "ci-deploy-prod",
            client_id: &ClientId::generate(),
            secret_hash: ClientSecret::generate().hash(),
            created_at: now,
            expires_at: now + Duration::days(90),
            bounds: Default::default(),
        }))
        .unwrap();
        let policy_file = dir.path().join("policy.toml");
        std::fs::write(&policy_file, POLICY).unwrap();
        let ctx = ActionContext {
            store: store.clone(),
            policy_file: policy_file.clone(),
            state_dir: dir.path().to_path_buf(),
            secret_dir: dir.path().join("secrets"),
        };
        let quiet = Duration::seconds(5);
        let start = ConsoleAction::StartToken {
            name: "ci-deploy-prod".into(),
            in_place: false,
        };
        let text = perform(&ctx, quiet, &start, now).unwrap();
        let secret_file = dir.path().join("secrets/ci-deploy-prod-v2.json");
        assert!(text.contains(&secret_file.display().to_string()), "{text}");
        let body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&secret_file).unwrap()).unwrap();
        let secret = body["client_secret"].as_str().unwrap();
        assert!(!text.contains(secret), "the notice never shows the secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let mut reader = RotationsReader::new(store.clone());
        let rows = reader.read(now).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].old_name, "ci-deploy-prod");
        assert_eq!(rows[0].view.state, rotation::RotationState::Created);
        assert_eq!(rows[0].view.quiet_period, "5s");

        let id = rows[0].view.id.clone();
        let text = perform(
            &ctx,
            quiet,
            &ConsoleAction::Next {
                id: id.clone(),
                force: false,
            },
            now,
        )
        .unwrap();
        assert!(text.starts_with(&id), "{text}");
        let edited = std::fs::read_to_string(&policy_file).unwrap();
        assert!(edited.contains("ci-deploy-prod-v2") && edited.contains("# keep this comment"));
        assert_eq!(
            reader.read(now).unwrap()[0].view.state,
            rotation::RotationState::Added
        );

        // A second start of the same token is refused with the library's reason.
        let err = perform(&ctx, quiet, &start, now).unwrap_err();
        assert!(err.contains("ci-deploy-prod"), "{err}");
    }
}
