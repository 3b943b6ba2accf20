//! The help never lies: every subcommand and argument in the clap tree has help text, and no two
//! different subcommands share one description (a doc comment copied or inherited by mistake).

use std::collections::HashMap;

use botgate::cli::Cli;
use clap::CommandFactory;

/// Walk the tree depth-first, calling `visit` with each command's full path.
fn walk(cmd: &clap::Command, path: &str, visit: &mut dyn FnMut(&str, &clap::Command)) {
    visit(path, cmd);
    for sub in cmd.get_subcommands() {
        walk(sub, &format!("{path} {}", sub.get_name()), visit);
    }
}

#[test]
fn every_subcommand_and_argument_has_help_text() {
    let mut missing = Vec::new();
    walk(&Cli::command(), "botgate", &mut |path, cmd| {
        if cmd.get_about().is_none() {
            missing.push(format!("{path}: subcommand without help"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path}: argument {id} without help"));
            }
        }
    });
    assert!(
        missing.is_empty(),
        "help text missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_two_subcommands_share_a_description() {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut dupes = Vec::new();
    walk(&Cli::command(), "botgate", &mut |path, cmd| {
        let Some(about) = cmd.get_about() else { return };
        if path == "botgate" {
            return;
        }
        let about = about.to_string();
        if let Some(first) = seen.get(&about) {
            dupes.push(format!("{first} and {path}: {about:?}"));
        } else {
            seen.insert(about, path.to_string());
        }
    });
    assert!(
        dupes.is_empty(),
        "shared descriptions:\n{}",
        dupes.join("\n")
    );
}

#[test]
fn rotate_start_token_help_describes_rotation_not_json() {
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("rotate")
        .and_then(|c| c.find_subcommand_mut("start"))
        .and_then(|c| c.find_subcommand_mut("token"))
        .map(|c| c.render_help().to_string())
        .unwrap_or_default();
    assert!(!help.contains("for any listing verb"), "{help}");
    assert!(help.contains("--quiet-period"), "{help}");
}
