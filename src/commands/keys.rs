//! `botgate keys list|rotate`: the origin assertion's signing keys (kept in the store, shared
//! by every gate on it; see `assertion::lifecycle` for what the states mean).

use anyhow::Result;
use chrono::Utc;
use serde::Serialize;

use super::{print_json, print_table, rfc3339};
use crate::assertion::lifecycle::{self, KeyError, KeyStatus};
use crate::assertion::{Alg, Settings};
use crate::cli::KeysCommand;
use crate::exit::Failure;
use crate::paths::Paths;

pub fn run(paths: &Paths, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::List { json } => list(paths, json.json),
        KeysCommand::Rotate {
            publish_ahead,
            alg,
            json,
        } => rotate(paths, publish_ahead.as_deref(), alg.as_deref(), json.json),
    }
}

/// One key as `list` shows it (the private key never).
#[derive(Debug, Serialize)]
struct KeyView {
    kid: String,
    alg: String,
    state: &'static str,
    created_at: String,
    activates_at: String,
    /// Retiring: when it leaves the key set.
    removes_at: Option<String>,
    /// Active: when automatic rotation publishes its successor (`null` when it is off).
    rotates_at: Option<String>,
}

impl KeyView {
    fn from(s: &KeyStatus<'_>) -> Self {
        Self {
            kid: s.record.kid.clone(),
            alg: s.record.alg.clone(),
            state: s.state.as_str(),
            created_at: rfc3339(s.record.created_at),
            activates_at: rfc3339(s.record.activates_at),
            removes_at: s.removes_at.map(rfc3339),
            rotates_at: s.rotates_at.map(rfc3339),
        }
    }
}

/// `[gate]`'s assertion settings, or the defaults when there is no policy file.
fn settings(paths: &Paths) -> Result<Settings> {
    let gate = match crate::config::load(&paths.config) {
        Ok(cfg) => cfg.file.gate,
        Err(crate::config::ConfigError::NotFound { .. }) => Default::default(),
        Err(e) => return Err(Failure::bad_input(e.to_string())),
    };
    Settings::from_gate(&gate)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", paths.config.display())))
}

fn list(paths: &Paths, json: bool) -> Result<()> {
    let settings = settings(paths)?;
    if !paths.store_exists()? {
        return Err(Failure::refused(format!(
            "no store in {}: the first key is created when a gate starts (`botgate serve`)",
            paths.state_dir.display()
        )));
    }
    let store = paths.open_store()?;
    let keys = crate::store::wait(store.list_signing_keys())?;
    let now = Utc::now();
    let views: Vec<KeyView> = lifecycle::statuses(&keys, now, &settings.keys)
        .iter()
        .map(KeyView::from)
        .collect();
    if json {
        return print_json(&views);
    }
    if views.is_empty() {
        println!("no signing keys yet: the first is created when a gate starts (`botgate serve`)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            let next = match (v.state, &v.removes_at, &v.rotates_at) {
                ("next", _, _) => format!("signs from {}", v.activates_at),
                (_, Some(r), _) => format!("removed at {r}"),
                (_, _, Some(r)) => format!("rotates at {r}"),
                _ => "rotation off".to_string(),
            };
            vec![
                v.kid.clone(),
                v.alg.clone(),
                v.created_at.clone(),
                v.state.to_string(),
                next,
            ]
        })
        .collect();
    print_table(&["KID", "ALG", "CREATED", "STATE", "NEXT"], &rows)
}

fn rotate(paths: &Paths, publish_ahead: Option<&str>, alg: Option<&str>, json: bool) -> Result<()> {
    let settings = settings(paths)?;
    let ahead = match publish_ahead {
        Some(text) => crate::duration::parse(text)
            .map_err(|e| Failure::bad_input(format!("--publish-ahead: {e}")))?,
        None => settings.keys.publish_ahead,
    };
    let alg = match alg {
        Some(a) => Alg::parse(a).map_err(|e| Failure::bad_input(format!("--alg: {e}")))?,
        None => settings.keys.alg,
    };
    let store = paths.open_store()?;
    let now = Utc::now();
    let made = crate::store::wait(lifecycle::rotate(&store, alg, now, ahead, &settings.keys))
        .map_err(|e| match e {
            KeyError::AlreadyRotating { .. } => Failure::refused(e.to_string()),
            other => other.into(),
        })?;
    super::token::deliver_admin(paths, &store, now);
    let keys = crate::store::wait(store.list_signing_keys())?;
    let statuses = lifecycle::statuses(&keys, now, &settings.keys);
    let Some(view) = statuses
        .iter()
        .find(|s| s.record.kid == made.kid)
        .map(KeyView::from)
    else {
        return Err(anyhow::anyhow!(
            "the new key {} is not in the store",
            made.kid
        ));
    };
    if json {
        return print_json(&view);
    }
    println!(
        "published key {} ({}); gates sign with it from {} (in {})",
        view.kid,
        view.alg,
        view.activates_at,
        crate::duration::countdown(ahead)
    );
    if let Some(current) = statuses
        .iter()
        .find(|s| s.state == lifecycle::KeyState::Active)
    {
        println!(
            "the current key {} stays published until {} (overlap {})",
            current.record.kid,
            rfc3339(made.activates_at + settings.keys.overlap),
            crate::duration::countdown(settings.keys.overlap)
        );
    }
    Ok(())
}
