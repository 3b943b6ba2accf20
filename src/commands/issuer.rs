//! `botgate issuer list|show|refresh`: the `[[oidc_issuer]]`s and their key sets, as the gates
//! on this state dir keep them (`<state>/oidc/<name>.json`); `refresh` fetches now.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{print_json, print_table, rfc3339};
use crate::cli::IssuerCommand;
use crate::exit::Failure;
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

#[derive(Debug, Serialize)]
struct KeyView {
    kid: Option<String>,
    alg: Option<&'static str>,
    key: String,
}

#[derive(Debug, Serialize)]
struct IssuerView {
    name: String,
    issuer: String,
    /// The key-set URL, `discovery via …`, or the file.
    source: String,
    audiences: Vec<String>,
    algorithms: Vec<&'static str>,
    /// Where the key set in use came from.
    from: Option<String>,
    fetched_at: Option<String>,
    /// Seconds since the key set in use was fetched.
    age_seconds: Option<i64>,
    expires_at: Option<String>,
    /// Older than `max_key_age`: the gate raises `oidc_keys_stale`.
    stale: bool,
    max_key_age_seconds: i64,
    kids: Vec<String>,
    keys: Vec<KeyView>,
    last_attempt: Option<String>,
    last_error: Option<String>,
    failures: u64,
}

impl IssuerView {
    fn of(s: &IssuerState, now: DateTime<Utc>) -> Self {
        let keys = s.keys();
        let status = s.status();
        let age = keys.as_ref().map(|k| (now - k.fetched_at).num_seconds());
        Self {
            name: s.settings.name.to_string(),
            issuer: s.settings.issuer.clone(),
            source: s.settings.source.describe(),
            audiences: s.settings.audiences.clone(),
            algorithms: s.settings.algorithms.iter().map(|a| a.as_str()).collect(),
            from: keys.as_ref().map(|k| k.from.clone()),
            fetched_at: keys.as_ref().map(|k| rfc3339(k.fetched_at)),
            age_seconds: age,
            expires_at: keys.as_ref().map(|k| rfc3339(k.expires_at)),
            stale: s.is_stale(now),
            max_key_age_seconds: s.settings.max_key_age.num_seconds(),
            kids: keys.as_ref().map(|k| k.set.kids()).unwrap_or_default(),
            keys: keys
                .as_ref()
                .map(|k| {
                    k.set
                        .keys
                        .iter()
                        .map(|key| KeyView {
                            kid: key.kid.clone(),
                            alg: key.alg.map(|a| a.as_str()),
                            key: key.describe(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            last_attempt: status.last_attempt.map(rfc3339),
            last_error: status.last_error,
            failures: status.failures,
        }
    }
}

fn age_text(v: &IssuerView) -> String {
    match v.age_seconds {
        Some(a) => format!(
            "{}{}",
            crate::duration::ago(chrono::Duration::seconds(a)),
            if v.stale { " (stale)" } else { "" }
        ),
        None => "never fetched".into(),
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
