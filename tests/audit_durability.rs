//! The audit trail loses nothing that was answered: a real `botgate serve` under load from a
//! bounded set of concurrent clients is killed with SIGKILL, its audit log is renamed, deleted,
//! replaced by a directory, put in a read-only directory and on a full disk; every ray id a
//! client got an answer for (other than the 503 of a failing log) is in the audit files after,
//! no line is corrupt, and the gate either fails closed (503, `/healthz` 503) or recovers.

mod common;
// A loopback port nothing listens on now, for a server the test starts.
use common::closed_port as free_port;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

const POLICY: &str = r#"
[gate]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
audit_log = "{audit}"
{extra}

[[app]]
name = "api.test"
hostnames = ["api.test"]
upstream = "http://{upstream}"

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

/// A state dir, a policy file, a token and the `botgate serve` process using them.
struct Gate {
    dir: tempfile::TempDir,
    state: PathBuf,
    config: PathBuf,
    audit: PathBuf,
    port: u16,
    admin: u16,
    id: String,
    secret: String,
    /// Run the gate as this uid/gid (to make directory permissions apply to it).
    run_as: Option<u32>,
    /// Wrap the command (e.g. `prlimit --fsize=…`).
    wrapper: Vec<String>,
    child: Option<Child>,
}

impl Gate {
    /// Set up; `audit` is the audit log path relative to the temp dir; `extra` goes in `[gate]`.
    async fn new(audit: &str, extra: &str) -> Gate {
        let upstream = common::echo_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = dir.path().join("policy.toml");
        let audit = dir.path().join(audit);
        let (port, admin) = (free_port(), free_port());
        let policy = POLICY
            .replace("{port}", &port.to_string())
            .replace("{admin}", &admin.to_string())
            .replace("{audit}", &audit.display().to_string())
            .replace("{extra}", extra)
            .replace("{upstream}", &upstream.to_string());
        std::fs::write(&config, policy).unwrap();
        let (id, secret) = common::cli_token(&state, &config, "ci-deploy-prod");
        Gate {
            id,
            secret,
            dir,
            state,
            config,
            audit,
            port,
            admin,
            run_as: None,
            wrapper: Vec::new(),
            child: None,
        }
    }

    /// Start `botgate serve` and wait until it accepts connections.
    async fn start(&mut self) {
        let bin = cargo_bin("botgate");
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.arg("serve")
            .env("BOTGATE_STATE_DIR", &self.state)
            .env("BOTGATE_CONFIG", &self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("serve.log"))
                    .unwrap(),
            );
        if let Some(uid) = self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(uid);
        }
        self.child = Some(cmd.spawn().unwrap());
        let port = self.port;
        let up = common::eventually(Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "botgate serve did not start: {}", self.serve_log());
    }

    fn serve_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGKILL and reap.
    fn kill_9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Ctrl-C and reap.
    fn stop(&mut self) {
        if self.child.is_some() {
            self.signal("-INT");
            self.child.take().unwrap().wait().unwrap();
        }
    }

    fn request(&self, c: &reqwest::Client) -> reqwest::RequestBuilder {
        c.get(format!("http://127.0.0.1:{}/", self.port))
            .header("host", "api.test")
            .header("cf-access-client-id", &self.id)
            .header("cf-access-client-secret", &self.secret)
    }

    async fn call(&self, c: &reqwest::Client) -> u16 {
        self.request(c).send().await.unwrap().status().as_u16()
    }

    async fn healthz(&self, c: &reqwest::Client) -> (u16, String) {
        let r = c
            .get(format!("http://127.0.0.1:{}/healthz", self.admin))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One answered request.
#[derive(Debug, Clone)]
struct Answer {
    ray: String,
    status: u16,
    sent: Instant,
}

/// Concurrent client loops, each sending until stopped, `max` requests, or a connection error.
struct Load {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(gate: &Gate, clients: usize, max: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, count, answers) = (stop.clone(), count.clone(), answers.clone());
                let req = gate.request(&common::client());
                tokio::spawn(async move {
                    for _ in 0..max {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let sent = Instant::now();
                        let Ok(resp) = req.try_clone().unwrap().send().await else {
                            return;
                        };
                        let ray = resp
                            .headers()
                            .get("x-botgate-ray-id")
                            .map(|v| v.to_str().unwrap().to_string())
                            .expect("every answer names its ray id");
                        let status = resp.status().as_u16();
                        // Answered: the head arrived (the body may still be cut by a crash).
                        answers.lock().unwrap().push(Answer { ray, status, sent });
                        count.fetch_add(1, Ordering::Relaxed);
                        let _ = resp.bytes().await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            count,
            answers,
            tasks,
        }
    }

    fn answered(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Wait (bounded) until `n` more requests were answered than now.
    async fn wait_for(&self, more: usize) {
        let target = self.answered() + more;
        let ok = common::eventually(Duration::from_secs(20), || async {
            self.answered() >= target
        })
        .await;
        assert!(ok, "the load stalled at {} answers", self.answered());
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.answers).unwrap().into_inner().unwrap()
    }
}

/// The ray ids in audit files; panics on a corrupt line. A partial last line (a crash in the
/// middle of a write) is allowed only when `allow_partial_tail`, and is not counted.
fn audit_rays(
    files: &[&Path],
    allow_partial_tail: bool,
) -> (HashSet<String>, Vec<serde_json::Value>) {
    let mut rays = HashSet::new();
    let mut events = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        let tail = &text[complete.len()..];
        assert!(
            tail.is_empty() || allow_partial_tail,
            "{} ends with a partial line: {tail:?}",
            f.display()
        );
        for line in complete.lines() {
            let ev: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("corrupt line in {}: {e}: {line:?}", f.display()));
            if let Some(r) = ev["ray_id"].as_str() {
                rays.insert(r.to_string());
            }
            events.push(ev);
        }
    }
    (rays, events)
}

/// Every answered ray (except the 503s of a failing log) is in `rays`.
fn assert_all_recorded(answers: &[Answer], rays: &HashSet<String>, what: &str) {
    let missing: Vec<_> = answers
        .iter()
        .filter(|a| a.status != 503 && !rays.contains(&a.ray))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} answered requests are not in the audit log, e.g. {:?}",
        missing.len(),
        answers.len(),
        missing.first()
    );
}

async fn eventually_status(gate: &Gate, c: &reqwest::Client, want: u16) -> bool {
    common::eventually(Duration::from_secs(10), || async {
        gate.call(c).await == want
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_survive_kill_9() {
    let mut gate = Gate::new("state/audit.jsonl", "").await;
    let mut all: Vec<Answer> = Vec::new();
    let mut partial_tails = 0;
    for round in 0..3 {
        gate.start().await;
        let load = Load::start(&gate, 8, 5_000);
        // A random moment: after 100..1,500 more answers.
        load.wait_for(100 + rand::random_range(0..1_400)).await;
        gate.kill_9();
        let answers = load.finish().await;
        assert!(answers.len() >= 100);
        let (rays, _) = audit_rays(&[&gate.audit], true);
        assert_all_recorded(&answers, &rays, &format!("kill -9, round {round}"));
        if !std::fs::read(&gate.audit).unwrap().ends_with(b"\n") {
            partial_tails += 1;
        }
        all.extend(answers);
    }
    // A restart quarantines a partial last line; the log is then whole and complete.
    gate.start().await;
    let c = common::client();
    assert_eq!(gate.call(&c).await, 200);
    let (rays, events) = audit_rays(&[&gate.audit], false);
    assert_all_recorded(&all, &rays, "after the restarts");
    let quarantined = events
        .iter()
        .filter(|e| e["decision"] == "audit_partial_line_quarantined")
        .count();
    assert_eq!(
        quarantined, partial_tails,
        "each partial tail is reported once"
    );
    gate.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_last_line_is_quarantined() {
    let mut gate = Gate::new("state/audit.jsonl", "").await;
    std::fs::create_dir_all(&gate.state).unwrap();
    let glued = r#"{"event":"access","created_at":"2026-12-03T08:00:00.000Z","ray_id":"cut"#;
    let mut text = std::fs::read_to_string(&gate.audit).unwrap_or_default();
    text.push_str(glued);
    std::fs::write(&gate.audit, &text).unwrap();
    gate.start().await;
    let c = common::client();
    assert_eq!(gate.call(&c).await, 200);
    let (_, events) = audit_rays(&[&gate.audit], false);
    let q = events
        .iter()
        .find(|e| e["decision"] == "audit_partial_line_quarantined")
        .expect("the quarantine is recorded in the log");
    let side = q["details"]["details"]["side_file"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(side).unwrap(), glued, "bytes kept");
    assert_eq!(q["details"]["details"]["bytes"], glued.len());
    assert!(
        Path::new(side).parent() == gate.audit.parent(),
        "beside the log"
    );
    assert!(
        gate.serve_log().contains("partial line"),
        "{}",
        gate.serve_log()
    );
    assert_eq!(events.last().unwrap()["event"], "access");
    gate.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_renamed_is_reopened() {
    let mut gate = Gate::new("state/audit.jsonl", "").await;
    gate.start().await;
    let rotated = gate.audit.with_extension("jsonl.1");
    let c = common::client();
    let load = Load::start(&gate, 4, 100_000);
    load.wait_for(200).await;
    // logrotate `create`: rename, create the new file, then SIGHUP (postrotate).
    std::fs::rename(&gate.audit, &rotated).unwrap();
    // As logrotate does (O_EXCL): the gate may have noticed and created it already.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&gate.audit);
    gate.signal("-HUP");
    load.wait_for(200).await;
    let after_hup = Instant::now();
    load.wait_for(200).await;
    // Without a signal (logrotate `nocreate`, or a plain `mv`): noticed within a second.
    let rotated2 = gate.audit.with_extension("jsonl.2");
    std::fs::rename(&gate.audit, &rotated2).unwrap();
    let recreated =
        common::eventually(Duration::from_secs(5), || async { gate.audit.exists() }).await;
    assert!(recreated, "the path was not recreated");
    load.wait_for(200).await;
    let answers = load.finish().await;
    assert_eq!(gate.healthz(&c).await.0, 200);
    let (rays, _) = audit_rays(&[&rotated, &rotated2, &gate.audit], false);
    assert_all_recorded(&answers, &rays, "rename");
    let (in_new, _) = audit_rays(&[&rotated2], false);
    assert!(
        answers
            .iter()
            .filter(|a| a.sent > after_hup)
            .take(50)
            .all(|a| in_new.contains(&a.ray)),
        "after SIGHUP the events go to the new file"
    );
    assert!(answers.iter().all(|a| a.status == 200));
    gate.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_deleted_is_recreated() {
    let mut gate = Gate::new("state/audit.jsonl", "").await;
    gate.start().await;
    let c = common::client();
    let load = Load::start(&gate, 4, 100_000);
    load.wait_for(200).await;
    std::fs::remove_file(&gate.audit).unwrap();
    let deleted = Instant::now();
    load.wait_for(300).await;
    let answers = load.finish().await;
    assert!(gate.audit.exists(), "the audit log was not recreated");
    let (rays, _) = audit_rays(&[&gate.audit], false);
    let after: Vec<_> = answers
        .iter()
        .filter(|a| a.sent > deleted)
        .cloned()
        .collect();
    assert!(after.len() >= 300);
    assert_all_recorded(&after, &rays, "requests sent after the delete");
    assert!(answers.iter().all(|a| a.status == 200));
    assert_eq!(gate.healthz(&c).await.0, 200);
    gate.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_path_blocked_fails_closed() {
    let mut gate = Gate::new("state/audit.jsonl", "").await;
    gate.start().await;
    let c = common::client();
    let load = Load::start(&gate, 2, 100_000);
    load.wait_for(100).await;
    std::fs::remove_file(&gate.audit).unwrap();
    std::fs::create_dir(&gate.audit).unwrap();
    assert!(eventually_status(&gate, &c, 503).await, "kept serving");
    let (status, body) = gate.healthz(&c).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("audit_failing") && body.contains("audit.jsonl"),
        "{body}"
    );
    // A directory in the way stays until removed; then the gate recovers by itself.
    std::fs::remove_dir(&gate.audit).unwrap();
    assert!(eventually_status(&gate, &c, 200).await, "did not recover");
    assert_eq!(gate.healthz(&c).await.0, 200);
    load.wait_for(100).await;
    let answers = load.finish().await;
    let (rays, events) = audit_rays(&[&gate.audit], false);
    // Requests answered before the delete were in the deleted file; those sent after it
    // either got 503 or are in the new file.
    let after: Vec<_> = answers
        .iter()
        .rev()
        .take_while(|a| a.status != 503)
        .cloned()
        .collect();
    assert!(after.len() >= 100);
    assert_all_recorded(&after, &rays, "after recovery");
    let states: Vec<_> = events
        .iter()
        .filter(|e| e["decision"] == "audit_log_unavailable")
        .map(|e| e["details"]["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states,
        ["open", "resolved"],
        "the outage alert is in the log"
    );
    gate.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_dir_read_only_fails_closed() {
    use std::os::unix::fs::PermissionsExt;
    let mut gate = Gate::new("logs/audit.jsonl", "").await;
    let logs = gate.audit.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&logs).unwrap();
    // Root ignores directory permissions: run the gate as an unprivileged user.
    if is_root() {
        let nobody = 65534;
        std::fs::set_permissions(gate.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for p in walk(gate.dir.path()) {
            std::os::unix::fs::chown(&p, Some(nobody), Some(nobody)).unwrap();
        }
        gate.run_as = Some(nobody);
    }
    gate.start().await;
    let c = common::client();
    assert_eq!(gate.call(&c).await, 200);
    // logrotate renames the log, cannot `create` a new one for the gate; the gate cannot either.
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o555)).unwrap();
    let rotated = logs.join("audit.jsonl.1");
    std::fs::rename(&gate.audit, &rotated).unwrap();
    gate.signal("-USR1");
    assert!(eventually_status(&gate, &c, 503).await, "kept serving");
    let (status, body) = gate.healthz(&c).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("ermission denied"), "{body}");
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(eventually_status(&gate, &c, 200).await, "did not recover");
    let load = Load::start(&gate, 2, 100);
    let answers = load.finish().await;
    assert!(!answers.is_empty());
    let (rays, events) = audit_rays(&[&rotated, &gate.audit], false);
    assert_all_recorded(&answers, &rays, "after recovery");
    assert!(
        events
            .iter()
            .any(|e| e["decision"] == "audit_log_unavailable"),
        "the outage alert is in the log"
    );
    gate.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_truncates_partial_batch() {
    let mut gate = Gate::new("logs/audit.jsonl", "").await;
    let logs = gate.audit.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&logs).unwrap();
    // A real full disk: a small tmpfs where mounting is allowed, else a file-size limit on
    // the gate process (then the log is rotated to make room).
    let disk = SmallDisk::mount(&logs, 256 * 1024);
    let filler = logs.join("filler");
    match &disk {
        Some(_) => {
            std::fs::write(&gate.audit, b"").unwrap();
            fill_until_full(&filler);
            // Two pages left, so a batch is cut short in its middle (a partial write).
            let len = std::fs::metadata(&filler).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&filler)
                .unwrap()
                .set_len(len - 8192)
                .unwrap();
        }
        None => {
            // The limit applies to every file the gate writes: above the store's, with the log
            // filled (with valid lines) to just under it.
            let store = walk(&gate.state)
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0);
            let limit = store + 1024 * 1024;
            let mut filler_lines = String::new();
            while (filler_lines.len() as u64) < limit - 16 * 1024 {
                filler_lines.push_str("{\"filler\":true}\n");
            }
            std::fs::write(&gate.audit, filler_lines).unwrap();
            eprintln!("mount -t tmpfs not permitted: RLIMIT_FSIZE={limit} (prlimit) instead");
            gate.wrapper = vec!["prlimit".into(), format!("--fsize={limit}"), "--".into()];
        }
    }
    gate.start().await;
    let c = common::client();
    let load = Load::start(&gate, 4, 100_000);
    assert!(
        eventually_status(&gate, &c, 503).await,
        "never ran out of space"
    );
    let (status, body) = gate.healthz(&c).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("cannot write") && body.contains("audit.jsonl"),
        "{body}"
    );
    // Make room: free the disk, or rotate the log away from the size limit.
    let rotated = logs.join("audit.jsonl.1");
    match &disk {
        Some(_) => std::fs::remove_file(&filler).unwrap(),
        None => {
            std::fs::rename(&gate.audit, &rotated).unwrap();
            gate.signal("-HUP");
        }
    }
    assert!(eventually_status(&gate, &c, 200).await, "did not recover");
    load.wait_for(100).await;
    let answers = load.finish().await;
    assert!(answers.iter().any(|a| a.status == 503));
    let (rays, events) = audit_rays(&[&rotated, &gate.audit], false);
    assert_all_recorded(&answers, &rays, "ENOSPC");
    assert!(
        events
            .iter()
            .any(|e| e["decision"] == "audit_log_unavailable")
    );
    gate.stop();
    drop(disk);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Write to `path` until the disk is full.
fn fill_until_full(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = [b'x'; 4096];
    while f.write_all(&block).is_ok() {}
}

/// A tmpfs mounted on a directory for the test, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, bytes: usize) -> Option<SmallDisk> {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
