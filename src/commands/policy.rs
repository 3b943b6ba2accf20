//! `botgate policy check`: validate the policy file and lint it against the store and this host;
//! print every finding (errors first), then a summary. Exit 2 when there is any error; warnings
//! do not fail the check. (`policy explain` lives with the policy engine.)

use anyhow::Result;
use chrono::Utc;

use crate::cli::PolicyCommand;
use crate::config::finding::{plural, sort_findings};
use crate::config::{ConfigError, Finding, LintContext, lint, load};
use crate::exit::Failure;
use crate::paths::Paths;
use crate::store::Store;

pub fn run(paths: &Paths, cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Check(json) => check(paths, json.json),
        PolicyCommand::Explain(args) => super::explain::run_with_paths(paths, &args),
    }
}

fn check(paths: &Paths, json: bool) -> Result<()> {
    let (mut findings, linted) = match load(&paths.config) {
        Ok(cfg) => {
            let ctx = lint_context(paths)?;
            let mut all = cfg.warnings.clone();
            all.extend(lint(&cfg, &ctx));
            (all, true)
        }
        Err(ConfigError::Invalid { findings, .. }) => (findings, false),
        // Missing, unreadable or over the size limit: the file given is the problem.
        Err(e) => return Err(Failure::bad_input(e.to_string())),
    };
    sort_findings(&mut findings);
    let errors = findings.iter().filter(|f| f.is_error()).count();
    if json {
        super::print_json(&findings)?;
    } else {
        for f in &findings {
            println!("{f}");
        }
    }
    if !json && linted {
        print_audiences(paths);
        print_retiring(paths);
    }
    let summary = summary(paths, &findings, errors, linted);
    if errors > 0 {
        return Err(Failure::bad_input(summary));
    }
    if json {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}

/// Each app's origin assertion audience (`aud`): what its origin verifies against. Read from
/// the store (a tag is assigned there the first time an app is seen, by a check or a gate).
fn print_audiences(paths: &Paths) {
    let Ok(cfg) = load(&paths.config) else { return };
    let Ok(mut set) = crate::policy::compile(&cfg.file) else {
        return;
    };
    let stored = match paths.store_exists() {
        Ok(true) => paths.open_store().ok().and_then(|store| {
            crate::store::wait(crate::gate::assertion::resolve_audiences(&store, &mut set)).ok()
        }),
        _ => None,
    };
    if set.apps.is_empty() {
        return;
    }
    println!("origin assertion (Cf-Access-Jwt-Assertion) audiences:");
    for app in &set.apps {
        let aud = match (app.assertion, app.audience.is_empty(), stored.is_some()) {
            (false, _, _) => "off (assertion = false)".to_string(),
            (true, false, _) => format!("aud {}", app.audience),
            (true, true, false) => {
                "aud assigned when the store is created (first `botgate serve`)".to_string()
            }
            (true, true, true) => "aud not assigned (store unreadable)".to_string(),
        };
        println!("  {}: {aud}", app.name);
    }
}

/// Tokens `[tokens]` retirement disables within a week (or that are past due: the next sweep
/// of a running gate disables them).
fn print_retiring(paths: &Paths) {
    let Ok(cfg) = load(&paths.config) else { return };
    let Ok(retire) = crate::retire::RetirePolicy::from_section(&cfg.file.tokens) else {
        return;
    };
    if retire.is_off() || !paths.store_exists().unwrap_or(false) {
        return;
    }
    let (Ok(set), Ok(store)) = (crate::policy::compile(&cfg.file), paths.open_store()) else {
        return;
    };
    let Ok(tokens) = crate::store::wait(store.list_tokens()) else {
        return;
    };
    let now = Utc::now();
    let mut soon: Vec<(chrono::DateTime<Utc>, String)> = tokens
        .iter()
        .filter_map(|t| {
            let d = crate::retire::due(t, crate::retire::referenced(&set, &t.name), &retire, now)?;
            (d.at - now <= crate::retire::WARN_WITHIN).then(|| {
                let when = if d.at <= now {
                    "at the next sweep".to_string()
                } else {
                    format!("in {}", crate::duration::countdown(d.at - now))
                };
                let why = match d.reason {
                    crate::retire::Reason::Inactive => match t.last_seen_at {
                        Some(s) => format!("unseen since {}", super::rfc3339(s)),
                        None => format!("never used since {}", super::rfc3339(t.created_at)),
                    },
                    crate::retire::Reason::Unreferenced => "no policy admits it".to_string(),
                };
                (d.at, format!("  {}: disabled {when} ({why})", t.name))
            })
        })
        .collect();
    if soon.is_empty() {
        return;
    }
    soon.sort();
    println!("tokens [tokens] retirement disables within 7 days:");
    for (_, line) in soon {
        println!("{line}");
    }
}

fn summary(paths: &Paths, findings: &[Finding], errors: usize, linted: bool) -> String {
    let warnings = findings.len() - errors;
    let file = paths.config.display();
    if errors > 0 {
        let lint = if linted {
            ""
        } else {
            "; lint runs once the errors are fixed"
        };
        format!(
            "{file}: {}, {}{lint}",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    } else if warnings > 0 {
        format!("{file}: ok, {}", plural(warnings, "warning"))
    } else {
        format!("{file}: ok, no findings")
    }
}

/// What lint checks the file against: the store's tokens, certificates and CAs, and whether
/// the root CA's private key is on this host. A state dir without a store is checked as an
/// empty store (and is not created by a check); a store that cannot be read is skipped, and
/// the checks that needed it are named on stderr, never dropped silently.
fn lint_context(paths: &Paths) -> Result<LintContext> {
    let now = Utc::now();
    let empty = LintContext {
        tokens: Some(Vec::new()),
        certs: Some(Vec::new()),
        root_key_on_host: false,
        known_ca_names: Some(Vec::new()),
        now,
    };
    if !paths.store_exists()? {
        eprintln!(
            "note: no store in {}: checking against no tokens, certificates and CAs",
            paths.state_dir.display()
        );
        return Ok(empty);
    }
    let store = match paths.open_store() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "note: cannot open the {}: {e}; skipped the token, certificate (validity vs. rotation cadence) and CA checks, checked the file alone",
                paths.store_name()
            );
            return Ok(LintContext {
                tokens: None,
                certs: None,
                root_key_on_host: false,
                known_ca_names: None,
                now,
            });
        }
    };
    let certs = match crate::store::wait(store.list_certs()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "note: cannot read the certificate inventory in the {}: {e}; skipped the certificate checks (validity vs. rotation cadence)",
                paths.store_name()
            );
            None
        }
    };
    Ok(LintContext {
        tokens: Some(crate::store::wait(store.list_tokens())?),
        certs,
        root_key_on_host: crate::store::wait(store.root_key_on_host())?,
        known_ca_names: Some(ca_names(&store)?),
        now,
    })
}

/// Names of every CA in the store (roots, intermediates, trusted).
fn ca_names(store: &Store) -> Result<Vec<String>> {
    let mut names: Vec<String> = crate::store::wait(store.list_cas())?
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    Ok(names)
}
