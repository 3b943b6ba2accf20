//! `botgate rotate start|status|next|abort`: the rotation workflow from the command line. The
//! logic lives in `rotation/`; this prints each step, why it comes in this order and what the
//! next one does. A refused step exits 1 with the reason and the evidence (`--json` prints the
//! refusal object on stdout as well).

use super::rfc3339;
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{print_json, print_table};
use crate::cli::{RotateCommand, RotateOpts, RotateTarget};
use crate::exit::Failure;
use crate::paths::Paths;
use crate::rotation::{
    self, Refusal, RotationEnv, RotationError, RotationView, StartOptions, StepOutcome,
};

pub fn run(paths: &Paths, cmd: RotateCommand) -> Result<()> {
    let store = paths.open_store()?;
    let env = RotationEnv {
        store: &store,
        policy_file: &paths.config,
        state_dir: &paths.state_dir,
    };
    let now = Utc::now();
    match cmd {
        RotateCommand::Start { target } => start(&env, target, now),
        RotateCommand::Status { id, json } => status(&env, id.as_deref(), json.json, now),
        RotateCommand::Next { id, force, json } => {
            let outcome = rotation::next(&env, &id, force, now);
            report_step(&env, &id, outcome, json.json, now)
        }
        RotateCommand::Abort { id, json } => {
            let outcome = rotation::abort(&env, &id, now);
            report_step(&env, &id, outcome, json.json, now)
        }
    }
}

fn start(env: &RotationEnv<'_>, target: RotateTarget, now: DateTime<Utc>) -> Result<()> {
    let options = |o: &RotateOpts| -> Result<StartOptions> {
        Ok(StartOptions {
            quiet_period: crate::duration::parse(&o.quiet_period)?,
            min_requests: o.min_requests,
            secret_out: None,
            cert_out: None,
            now,
        })
    };
    let (started, json) = match target {
        RotateTarget::Token {
            name,
            opts,
            secret_out,
            in_place,
            grace,
        } => {
            let mut o = options(&opts)?;
            o.secret_out = secret_out;
            let started = if in_place {
                let grace = super::token::parse_grace(&grace)?;
                rotation::start_token_in_place(env, &name, grace, &o)
            } else {
                rotation::start_token(env, &name, &o)
            };
            (started.map_err(rotation_err)?, opts.json.json)
        }
        RotateTarget::Cert {
            cn,
            opts,
            out,
            new_cn,
        } => {
            let mut o = options(&opts)?;
            if let Some(dir) = &out {
                crate::commands::ensure_out_dir(dir)?;
            }
            o.cert_out = out;
            (
                rotation::start_cert_to_cn(env, &cn, new_cn.as_deref(), &o)
                    .map_err(rotation_err)?,
                opts.json.json,
            )
        }
    };
    let r = &started.rotation;
    let evidence = rotation::workflow::collect_evidence(env.store, r).map_err(rotation_err)?;
    let view = rotation::view(r, &evidence, now);
    let new = r.new.as_ref();
    if json {
        return print_json(&serde_json::json!({
            "rotation": view,
            "new_credential": {
                "name": new.map(|n| &n.name),
                "key": new.map(|n| &n.key),
                "serial": new.and_then(|n| n.serial.as_ref()),
                "expires_at": new.and_then(|n| n.expires_at).map(rfc3339),
                "client_secret": started.secret.as_ref().map(|s| s.expose()),
                "files": started.files,
            },
            "notes": started.notes,
        }));
    }
    println!(
        "rotation {} started: {} {} -> {}",
        r.id,
        r.kind.as_str(),
        view.old,
        view.new.as_deref().unwrap_or("-")
    );
    let expires = new
        .and_then(|n| n.expires_at)
        .map(rfc3339)
        .unwrap_or_default();
    match (r.kind, new) {
        (rotation::CredentialKind::Token, Some(n)) if r.in_place() => {
            println!(
                "step 1/5 create: done. New secret {} for the same Client ID {}",
                n.label(),
                n.key
            )
        }
        (rotation::CredentialKind::Token, Some(n)) => {
            println!(
                "step 1/5 create: done. New token {} (client id {}), expires {expires}",
                n.name, n.key
            )
        }
        (_, Some(n)) => println!(
            "step 1/5 create: done. New certificate {} (fingerprint {}), expires {expires}",
            n.label(),
            n.key
        ),
        _ => {}
    }
    if let (Some(secret), Some(n)) = (&started.secret, new) {
        println!();
        println!("  CF-Access-Client-Id:     {}", n.key);
        println!("  CF-Access-Client-Secret: {}", secret.expose());
        println!();
        println!("The secret is shown once and only its SHA-256 is stored. Copy it now.");
    }
    for f in &started.files {
        println!("  written to {} (mode 0600)", f.display());
    }
    for n in &started.notes {
        println!("note: {n}");
    }
    print_why_and_next(&view, 0);
    Ok(())
}

fn status(env: &RotationEnv<'_>, id: Option<&str>, json: bool, now: DateTime<Utc>) -> Result<()> {
    let rotations = match id {
        Some(id) => vec![rotation::find(env.store, id).map_err(rotation_err)?],
        None => rotation::list(env.store).map_err(rotation_err)?,
    };
    // The table needs no evidence: skip reading the audit log once per rotation.
    let with_evidence = json || id.is_some();
    let mut views = Vec::with_capacity(rotations.len());
    for r in &rotations {
        let ev = if with_evidence {
            rotation::workflow::collect_evidence(env.store, r).map_err(rotation_err)?
        } else {
            rotation::Evidence::default()
        };
        views.push(rotation::view(r, &ev, now));
    }
    if json {
        return match id {
            Some(_) => print_json(&views[0]),
            None => print_json(&views),
        };
    }
    if id.is_some() {
        print_status(&views[0]);
        return Ok(());
    }
    if views.is_empty() {
        println!("no rotations yet; start one with `botgate rotate start token NAME`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.id.clone(),
                v.kind.as_str().into(),
                v.old.clone(),
                v.new.clone().unwrap_or_else(|| "-".into()),
                format!(
                    "{}{}",
                    v.state.as_str(),
                    if v.forced { " (forced)" } else { "" }
                ),
                format!("{}/{}", v.step_index.min(v.steps.len()), v.steps.len()),
                v.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    print_table(
        &["ID", "KIND", "OLD", "NEW", "STATE", "STEP", "UPDATED"],
        &rows,
    )
}

fn print_status(v: &RotationView) {
    println!(
        "rotation {}: {} {} -> {}, {}{}",
        v.id,
        v.kind.as_str(),
        v.old,
        v.new.as_deref().unwrap_or("-"),
        v.state.as_str(),
        if v.forced { " (FORCED revoke)" } else { "" }
    );
    println!(
        "quiet period {}, min requests {}, started {}",
        v.quiet_period,
        v.min_requests,
        rfc3339(v.created_at)
    );
    for (i, s) in v.steps.iter().enumerate() {
        let mark = if s.done { "[x]" } else { "[ ]" };
        let when = s.done_at.map(rfc3339).unwrap_or_default();
        let here = if i == v.step_index && !s.done {
            "  <- next"
        } else {
            ""
        };
        println!("  {mark} {} {:<8} {when}{here}", i + 1, s.name);
    }
    print_evidence(&v.evidence);
    if let Some(check) = &v.verify {
        if check.passed {
            println!("verify rule: would pass now");
        } else {
            println!("verify rule: not met yet");
        }
    }
    if let Some(reason) = &v.refused_reason {
        println!("next step would be refused now: {reason}");
    }
    print_why_and_next(v, v.step_index);
}

fn report_step(
    env: &RotationEnv<'_>,
    id: &str,
    outcome: Result<StepOutcome, RotationError>,
    json: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let out = match outcome {
        Ok(o) => o,
        Err(RotationError::Refused(refusal)) => {
            if json {
                print_refusal_json(env, id, &refusal, now)?;
            }
            return Err(Failure::refused(refusal.to_string()));
        }
        Err(e) => return Err(rotation_err(e)),
    };
    let r = &out.rotation;
    let view = rotation::view(r, &out.evidence, now);
    let t = &out.transition;
    if json {
        return print_json(&serde_json::json!({
            "rotation": view,
            "step": t.step,
            "from": t.from,
            "to": t.to,
            "forced": t.forced,
            "summary": out.summary,
            "diff": out.diff,
            "backup": out.backup,
            "notes": out.notes,
        }));
    }
    println!(
        "rotation {}: {} done ({} -> {}){}",
        r.id,
        t.step.as_str(),
        t.from.as_str(),
        t.to.as_str(),
        if t.forced { ", FORCED" } else { "" }
    );
    for line in &out.summary {
        println!("  {line}");
    }
    if let Some(diff) = &out.diff {
        println!();
        for line in diff.lines() {
            println!("    {line}");
        }
        println!();
    }
    for n in &out.notes {
        println!("note: {n}");
    }
    let done = view
        .steps
        .iter()
        .position(|s| s.name == t.step.as_str())
        .unwrap_or(view.step_index);
    print_evidence(&view.evidence);
    print_why_and_next(&view, done);
    Ok(())
}

/// The refusal object on stdout: the refusal and the rotation as it stands.
fn print_refusal_json(
    env: &RotationEnv<'_>,
    id: &str,
    refusal: &Refusal,
    now: DateTime<Utc>,
) -> Result<()> {
    #[derive(Serialize)]
    struct Refused<'a> {
        refused: bool,
        refusal: &'a Refusal,
        rotation: Option<RotationView>,
    }
    let rotation = rotation::find(env.store, id).ok().and_then(|r| {
        rotation::workflow::collect_evidence(env.store, &r)
            .ok()
            .map(|ev| rotation::view(&r, &ev, now))
    });
    print_json(&Refused {
        refused: true,
        refusal,
        rotation,
    })
}

fn print_evidence(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("evidence:");
    for l in lines {
        println!("  {l}");
    }
}

/// Why step `done` came where it did, and what `next` does from here.
fn print_why_and_next(v: &RotationView, done: usize) {
    if let Some(step) = v.steps.get(done) {
        println!("why this order ({}): {}", step.name, step.explanation);
    }
    match &v.next_action {
        Some(next) => {
            println!("next: {next}");
            println!("      run `botgate rotate next {}`", v.id);
        }
        None => println!("the rotation is finished ({})", v.state.as_str()),
    }
}

fn rotation_err(e: RotationError) -> anyhow::Error {
    match e {
        RotationError::Config(c) => super::serve::config_error(c),
        e if e.is_bad_input() => Failure::bad_input(e.to_string()),
        RotationError::Refused(r) => Failure::refused(r.to_string()),
        RotationError::NotFound(m) | RotationError::Conflict(m) => Failure::refused(m),
        other => anyhow::Error::new(other),
    }
}
