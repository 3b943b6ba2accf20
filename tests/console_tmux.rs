//! The console as a person uses it, in a real tmux: `botgate console --log FILE` in a 160×45
//! pane, keys sent with `tmux send-keys`, the screen read with `capture-pane`, and what `y`
//! copied read back with `tmux show-buffer` (tmux takes OSC 52 into a paste buffer when
//! `set-clipboard` is on). Each test uses its own tmux server socket. tmux is required
//! (`.ci/run` installs it); without it the test fails saying what to install.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use botgate::console::bench;

/// A tmux server of our own (`tmux -L NAME`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Self {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok(),
            "this test drives the console in tmux: install it (apt-get install tmux) or run .ci/run"
        );
        // One server per test, also when tests of this file run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            socket: format!("botgate-test-{}-{n}", std::process::id()),
        };
        let ok = t
            .run(&[
                "new-session",
                "-d",
                "-s",
                "c",
                "-x",
                "160",
                "-y",
                "45",
                command,
            ])
            .status
            .success();
        assert!(ok, "tmux new-session failed");
        assert!(
            t.run(&["set", "-g", "set-clipboard", "on"])
                .status
                .success()
        );
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn keys(&self, keys: &str) {
        assert!(self.run(&["send-keys", "-t", "c", keys]).status.success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "c"]).stdout).into()
    }

    fn buffer(&self) -> String {
        String::from_utf8_lossy(&self.run(&["show-buffer"]).stdout).into()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Poll `f` every 50 ms until it is true or 15 s have passed.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn console_command(dir: &Path, log: &Path) -> String {
    // The console's config dir is the temp dir's, never the user's.
    format!(
        "env XDG_CONFIG_HOME={} {} --state-dir {} --config {} console --log {}",
        dir.join("config").display(),
        env!("CARGO_BIN_EXE_botgate"),
        dir.display(),
        dir.join("policy.toml").display(),
        log.display()
    )
}

#[test]
fn y_in_the_log_view_puts_the_ray_id_into_the_tmux_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let start = chrono::Utc::now() - chrono::Duration::seconds(30);
    let mut lines = bench::jsonl_lines(40, start, 2).join("\n");
    lines.push('\n');
    std::fs::write(&log, lines).unwrap();
    // The newest of the 40 synthetic events.
    let newest = format!("{:016x}", 39);
    let tmux = Tmux::start(&console_command(dir.path(), &log));
    assert!(
        eventually(|| tmux.screen().contains("1 Traffic")),
        "the console did not start:\n{}",
        tmux.screen()
    );
    tmux.keys("7");
    assert!(
        eventually(|| tmux.screen().contains(&newest)),
        "{}",
        tmux.screen()
    );
    tmux.keys("y");
    assert!(
        eventually(|| tmux.buffer() == newest),
        "buffer {:?}; screen:\n{}",
        tmux.buffer(),
        tmux.screen()
    );
    assert!(tmux.screen().contains(&format!("copied ray id {newest}")));
    tmux.keys("q");
}

/// A log of two hours: 20 requests of `nightly-export` two hours ago, then 40 recent ones.
fn two_hour_log(dir: &Path) -> std::path::PathBuf {
    let log = dir.join("audit.jsonl");
    let now = chrono::Utc::now();
    let mut lines: Vec<String> = bench::jsonl_lines(20, now - chrono::Duration::hours(2), 1)
        .into_iter()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(&l).unwrap();
            v["service_token_name"] = "nightly-export".into();
            v["cert_common_name"] = serde_json::Value::Null;
            v["connection_method"] = "service_token".into();
            v.to_string()
        })
        .collect();
    lines.extend(bench::jsonl_lines(
        40,
        now - chrono::Duration::seconds(30),
        2,
    ));
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    log
}

#[test]
fn since_reads_the_last_hour_and_all_the_whole_log_and_the_header_says_how_far_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = two_hour_log(dir.path());
    let since = Tmux::start(&(console_command(dir.path(), &log) + " --since 1h"));
    assert!(
        eventually(|| since.screen().contains("since 1h, from ")),
        "{}",
        since.screen()
    );
    assert!(
        eventually(|| since.screen().contains("ci-deploy-prod")),
        "{}",
        since.screen()
    );
    assert!(
        !since.screen().contains("nightly-export"),
        "{}",
        since.screen()
    );
    since.keys("q");
    let all = Tmux::start(&(console_command(dir.path(), &log) + " --all"));
    assert!(
        eventually(|| all.screen().contains("from the start, from ")
            && all.screen().contains("(2h 0m ago)")),
        "{}",
        all.screen()
    );
    assert!(
        eventually(|| all.screen().contains("nightly-export")),
        "{}",
        all.screen()
    );
    all.keys("q");
}
