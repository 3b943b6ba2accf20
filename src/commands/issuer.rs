//! `botgate issuer list|show|refresh`: the `[[oidc_issuer]]`s and their key sets, as the gates
//! on this state dir keep them (`<state>/oidc/<name>.json`); `refresh` fetches now.

use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;

use super::{print_json, print_table};
use crate::cli::IssuerCommand;
use crate::exit::Failure;
use crate::oidc::view::{IssuerView, age_text};
use crate::oidc::{IssuerState, Issuers};
use crate::paths::Paths;

pub fn run(paths: &Paths, cmd: IssuerCommand) -> Result<()> {
    let issuers = load(paths)?;
    match cmd {
        IssuerCommand::List { json } => list(&issuers, json.json),
        IssuerCommand::Show { name, json } => {
            let state = find(&issuers, &name)?;
            show(&state, json.json)
        }
        IssuerCommand::Refresh { name, json } => {
            let state = find(&issuers, &name)?;
            let outcome = block_on(issuers.refresh(&state, Utc::now()));
            let view = IssuerView::of(&state, Utc::now());
            if json.json {
                print_json(&view)?;
            }
            match outcome {
                Ok(change) => {
                    if !json.json {
                        println!(
                            "{}: {} key(s) from {} ({})",
                            view.name,
                            view.kids.len(),
                            view.from.as_deref().unwrap_or("-"),
                            match (change.had_keys, change.changed()) {
                                (false, _) => "first fetch".to_string(),
                                (true, false) => "unchanged".to_string(),
                                (true, true) => format!(
                                    "added {}, removed {}",
                                    list_or_none(&change.added),
                                    list_or_none(&change.removed)
                                ),
                            }
                        );
                    }
                    Ok(())
                }
                Err(e) => Err(Failure::refused(format!(
                    "cannot refresh issuer {name}'s key set: {e} (the last good set, if any, stays in use)"
                ))),
            }
        }
    }
}

/// The issuers of the policy file, with what the state dir knows of their keys.
fn load(paths: &Paths) -> Result<Arc<Issuers>> {
    let loaded = super::serve::load_config(paths)?;
    let set = crate::policy::compile(&loaded.file)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", paths.config.display())))?;
    Ok(issuers_of(paths, &set))
}

/// The issuers of a compiled policy file, with what the state dir knows of their keys.
pub(crate) fn issuers_of(paths: &Paths, set: &crate::policy::PolicySet) -> Arc<Issuers> {
    let dir = paths
        .config
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let issuers = Issuers::new(Some(&paths.state_dir), &dir);
    issuers.sync(&set.issuers, Utc::now());
    issuers
}

fn find(issuers: &Issuers, name: &str) -> Result<Arc<IssuerState>> {
    issuers.by_name(name).ok_or_else(|| {
        let names: Vec<String> = issuers
            .all()
            .iter()
            .map(|s| s.settings.name.to_string())
            .collect();
        Failure::bad_input(match names.is_empty() {
            true => format!("no [[oidc_issuer]] named {name:?}: the policy file has none"),
            false => format!(
                "no [[oidc_issuer]] named {name:?}; configured: {}",
                names.join(", ")
            ),
        })
    })
}

/// Run `f` on a runtime of its own (the CLI has none; reqwest needs one).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => crate::store::wait(f),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("cannot start an async runtime: {e}")),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn list(issuers: &Issuers, json: bool) -> Result<()> {
    let now = Utc::now();
    let views: Vec<IssuerView> = issuers
        .all()
        .iter()
        .map(|s| IssuerView::of(s, now))
        .collect();
    if json {
        return print_json(&views);
    }
    if views.is_empty() {
        println!(
            "no [[oidc_issuer]] in the policy file (see the README: Credentials without secrets)"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.issuer.clone(),
                age_text(v),
                list_or_none(&v.kids),
                match (&v.last_error, v.failures) {
                    (Some(e), n) => format!("{n} failed: {e}"),
                    (None, _) => "ok".into(),
                },
            ]
        })
        .collect();
    print_table(
        &["NAME", "ISSUER", "KEYS FETCHED", "KEY IDS", "LAST REFRESH"],
        &rows,
    )
}

fn show(state: &IssuerState, json: bool) -> Result<()> {
    let v = IssuerView::of(state, Utc::now());
    if json {
        return print_json(&v);
    }
    println!("name:        {}", v.name);
    println!("issuer:      {}", v.issuer);
    println!("keys from:   {}", v.source);
    println!("audiences:   {}", v.audiences.join(", "));
    println!("algorithms:  {}", v.algorithms.join(", "));
    println!(
        "key set:     {} (max age {})",
        age_text(&v),
        crate::duration::countdown(chrono::Duration::seconds(v.max_key_age_seconds))
    );
    if let Some(e) = &v.expires_at {
        println!("refreshes:   {e}");
    }
    for k in &v.keys {
        println!(
            "  key {}  {}{}",
            k.kid.as_deref().unwrap_or("(no kid)"),
            k.key,
            k.alg.map(|a| format!("  alg {a}")).unwrap_or_default()
        );
    }
    match (&v.last_attempt, &v.last_error) {
        (Some(t), Some(e)) => println!("last try:    {t}: failed ({} in a row): {e}", v.failures),
        (Some(t), None) => println!("last try:    {t}: ok"),
        (None, _) => println!(
            "last try:    never (no gate has fetched it; `botgate issuer refresh {}`)",
            v.name
        ),
    }
    Ok(())
}
