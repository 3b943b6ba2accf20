//! `botgate console` at the CLI edge: bad input is a clear error with exit 2, and without a
//! terminal the verb refuses instead of scribbling escape codes into a pipe.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

fn botgate(state: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("botgate").unwrap();
    cmd.arg("--state-dir")
        .arg(state)
        .arg("--config")
        .arg(state.join("policy.toml"));
    cmd.env_remove("BOTGATE_THEME").env_remove("NO_COLOR");
    // The console's config dir (named filters, keys, columns) is the temp dir's, never ours.
    cmd.env("XDG_CONFIG_HOME", state.join("config"));
    cmd
}

#[test]
fn a_missing_log_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    botgate(dir.path())
        .args(["console", "--log"])
        .arg(dir.path().join("nope.jsonl"))
        .assert()
        .code(2)
        .stderr(contains("nope.jsonl: no such file"));
}

#[test]
fn an_unknown_theme_is_bad_input_listing_the_built_ins() {
    let dir = tempfile::tempdir().unwrap();
    botgate(dir.path())
        .args(["console", "--theme", "solarized"])
        .assert()
        .code(2)
        .stderr(contains("unknown theme \"solarized\"").and(contains("high-contrast")));
}

#[test]
fn a_theme_file_with_a_bad_colour_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let theme = dir.path().join("mine.toml");
    std::fs::write(&theme, "[colors]\nok = \"green\"\nwarn = \"orangeish\"\n").unwrap();
    botgate(dir.path())
        .arg("console")
        .env("BOTGATE_THEME", &theme)
        .assert()
        .code(2)
        .stderr(contains(
            "mine.toml:3: colors.warn = \"orangeish\" is not a colour",
        ));
}

#[test]
fn without_a_terminal_the_console_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    botgate(dir.path())
        .args(["console", "--log"])
        .arg(&log)
        .env("NO_COLOR", "1")
        .assert()
        .code(1)
        .stderr(contains("needs an interactive terminal"));
}

#[test]
fn demo_rate_multiplier_must_be_a_positive_number() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, says) in [
        ("0", "must be greater than 0"),
        ("-2", "must be greater than 0"),
        ("fast", "\"fast\" is not a number"),
    ] {
        botgate(dir.path())
            .args([
                "demo",
                "--headless",
                "--duration",
                "1",
                "--rate-multiplier",
                bad,
            ])
            .assert()
            .code(2)
            .stderr(contains("--rate-multiplier").and(contains(says)));
    }
}

#[test]
fn a_bad_since_names_the_flag_and_the_grammar() {
    let dir = tempfile::tempdir().unwrap();
    botgate(dir.path())
        .args(["console", "--since", "2 hours"])
        .assert()
        .code(2)
        .stderr(contains("--since").and(contains(
            "invalid duration \"2 hours\": expected a number and a unit s, m, h, d, w or y",
        )));
    botgate(dir.path())
        .args(["console", "--since", "0s"])
        .assert()
        .code(2)
        .stderr(contains("it is zero"));
}

#[test]
fn since_and_all_exclude_each_other_and_the_ring_needs_one_event() {
    let dir = tempfile::tempdir().unwrap();
    botgate(dir.path())
        .args(["console", "--since", "2h", "--all"])
        .assert()
        .code(2)
        .stderr(contains("--all").and(contains("cannot be used with")));
    botgate(dir.path())
        .args(["console", "--ring", "0"])
        .assert()
        .code(2)
        .stderr(contains("--ring").and(contains("0 is not in 1..=100000000")));
}

#[test]
fn a_broken_filters_file_in_the_config_dir_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config").join("botgate");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("filters.toml"),
        "[filters]\nok = \"deny\"\n\"two words\" = \"allow\"\n",
    )
    .unwrap();
    botgate(dir.path())
        .arg("console")
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}:3: filter name \"two words\"",
            config.join("filters.toml").display()
        )));
}

#[test]
fn a_conflicting_key_binding_names_the_file_line_and_both_actions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config").join("botgate");
    std::fs::create_dir_all(&config).unwrap();
    let keys = config.join("keys.toml");
    std::fs::write(&keys, "[keys]\n# pause like btm\nfreeze = \"q\"\n").unwrap();
    botgate(dir.path())
        .arg("console")
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}:3: freeze = \"q\": q is already bound to quit (built in); rebind quit too, or pick another key",
            keys.display()
        )));
    std::fs::write(&keys, "[keys]\nfreeze = \"Hyper-p\"\n").unwrap();
    botgate(dir.path())
        .arg("console")
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}:2: freeze = \"Hyper-p\": not a key",
            keys.display()
        )));
}

#[test]
fn a_columns_file_naming_no_view_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config").join("botgate");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("columns.toml");
    std::fs::write(&file, "[columns]\ntraffik = [\"identity\"]\n").unwrap();
    botgate(dir.path())
        .arg("console")
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}:2: no view \"traffik\"",
            file.display()
        )));
}
