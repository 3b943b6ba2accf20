//! `botgate token create|list|show|revoke`.

use super::rfc3339;
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{print_json, print_table};
use crate::bounds::{RateLimit, TokenBounds};
use crate::cli::{TokenCommand, TokenCreateArgs, TokenRotateSecretArgs, TokenUpdateArgs};
use crate::credential::{self, ClientId, ClientSecret};
use crate::exit::Failure;
use crate::paths::Paths;
use crate::store::tokens::MAX_TOKEN_LIFETIME;
use crate::store::{NewToken, Store, StoreError, TokenRecord};

pub fn run(paths: &Paths, cmd: TokenCommand) -> Result<()> {
    let store = paths.open_store()?;
    let now = Utc::now();
    match cmd {
        TokenCommand::Create(args) => create(paths, &store, now, args),
        TokenCommand::List(json) => {
            let tokens = crate::store::wait(store.list_tokens())?;
            if json.json {
                print_json(
                    &tokens
                        .iter()
                        .map(|t| TokenView::new(t, now))
                        .collect::<Vec<_>>(),
                )
            } else {
                print_list(&tokens, now)
            }
        }
        TokenCommand::Show { name, json } => {
            let t = crate::store::wait(store.find_token(&name)).map_err(store_err)?;
            let view = TokenView::new(&t, now);
            if json.json {
                print_json(&view)
            } else {
                print_show(&view);
                Ok(())
            }
        }
        TokenCommand::Revoke {
            name_or_client_id,
            json,
        } => {
            let t =
                crate::store::wait(store.revoke_token_recorded(&name_or_client_id, now, &|t| {
                    admin_entry(now, "token_revoke", t)
                }));
            report(paths, &store, now, t, json.json, |t| {
                format!(
                    "revoked token {} ({}); the running gate refuses it within 1 s",
                    t.name, t.client_id
                )
            })
        }
        TokenCommand::Disable {
            name_or_client_id,
            json,
        } => {
            let t = crate::store::wait(store.set_token_disabled(
                &name_or_client_id,
                true,
                now,
                &|t| admin_entry(now, "token_disable", t),
            ));
            report(paths, &store, now, t, json.json, |t| {
                format!(
                    "disabled token {} ({}); the running gate refuses it (401 token_disabled) within 1 s; `botgate token enable {}` lifts it",
                    t.name, t.client_id, t.name
                )
            })
        }
        TokenCommand::Enable {
            name_or_client_id,
            json,
        } => {
            let t = crate::store::wait(store.set_token_disabled(
                &name_or_client_id,
                false,
                now,
                &|t| admin_entry(now, "token_enable", t),
            ));
            report(paths, &store, now, t, json.json, |t| {
                format!(
                    "enabled token {} ({}); the running gate accepts it again within 1 s",
                    t.name, t.client_id
                )
            })
        }
        TokenCommand::RotateSecret(args) => rotate_secret(paths, &store, now, args),
        TokenCommand::Update(args) => update(paths, &store, now, args),
        TokenCommand::Refresh {
            name_or_client_id,
            duration,
            allow_long,
            json,
        } => {
            let lifetime = parse_lifetime(&duration, allow_long)?;
            let t = crate::store::wait(store.set_token_expiry(
                &name_or_client_id,
                now + lifetime,
                &|t| admin_entry(now, "token_refresh", t),
            ));
            report(paths, &store, now, t, json.json, |t| {
                format!(
                    "token {} ({}) now expires {}; its Client ID and secret are unchanged",
                    t.name,
                    t.client_id,
                    rfc3339(t.expires_at)
                )
            })
        }
    }
}

/// After a recorded change to one token: append its admin event where no gate relays it,
/// then print the token (`--json`) or what changed.
fn report(
    paths: &Paths,
    store: &Store,
    now: DateTime<Utc>,
    changed: Result<TokenRecord, StoreError>,
    json: bool,
    message: impl FnOnce(&TokenRecord) -> String,
) -> Result<()> {
    let t = changed.map_err(store_err)?;
    deliver_admin(paths, store, now);
    if json {
        print_json(&TokenView::new(&t, now))
    } else {
        println!("{}", message(&t));
        Ok(())
    }
}

/// The secret-bearing output of `create` (contract): printed once or written to `--secret-out`.
#[derive(Debug, Serialize)]
pub struct CreatedToken<'a> {
    pub name: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub expires_at: String,
}

/// Create a token, store its hash and its `token_create` admin event, and return the record and
/// the secret (shown once).
pub fn create_token(
    store: &Store,
    name: &str,
    lifetime: Duration,
    bounds: TokenBounds,
    now: DateTime<Utc>,
) -> Result<(TokenRecord, ClientSecret)> {
    credential::validate_token_name(name).map_err(Failure::bad_input)?;
    let client_id = ClientId::generate();
    let secret = ClientSecret::generate();
    let rec = crate::store::wait(store.create_token_recorded(
        &NewToken {
            name,
            client_id: &client_id,
            secret_hash: secret.hash(),
            created_at: now,
            expires_at: now + lifetime,
            bounds,
        },
        &|t| admin_entry(now, "token_create", t),
    ))
    .map_err(store_err)?;
    Ok((rec, secret))
}

/// Parse `--duration`, refusing more than a year unless allowed.
pub fn parse_lifetime(text: &str, allow_long: bool) -> Result<Duration> {
    let d = crate::duration::parse(text)?;
    if d > MAX_TOKEN_LIFETIME && !allow_long {
        return Err(Failure::bad_input(format!(
            "--duration {text} is longer than 1 year; long-lived bot credentials are a leak waiting to happen. Pass --allow-long if you really mean it"
        )));
    }
    Ok(d)
}

fn create(paths: &Paths, store: &Store, now: DateTime<Utc>, args: TokenCreateArgs) -> Result<()> {
    let lifetime = parse_lifetime(&args.duration, args.allow_long)?;
    if let Some(out) = &args.secret_out {
        crate::rotation::create::check_new_path(out, "--secret-out").map_err(rotation_input)?;
    }
    let bounds = TokenBounds {
        allow_ips: parse_allow_ips(&args.allow_ip)?,
        rate_limit: parse_rate(args.rate.as_deref(), args.burst)?,
    };
    let (rec, secret) = create_token(store, &args.name, lifetime, bounds, now)?;
    deliver_admin(paths, store, now);
    let created = CreatedToken {
        name: &rec.name,
        client_id: &rec.client_id,
        client_secret: secret.expose(),
        expires_at: rfc3339(rec.expires_at),
    };
    if !credential::follows_naming_convention(&rec.name) {
        eprintln!(
            "warning: token name {:?} does not follow <team>-<purpose>-<env> (e.g. ci-deploy-prod)",
            rec.name
        );
    }
    match &args.secret_out {
        Some(out) => {
            crate::rotation::create::write_secret_file(out, &rec, &secret).with_context(|| format!("token {} was created but its secret could not be written; revoke it with `botgate token revoke {}`", rec.name, rec.client_id))?;
            if args.json.json {
                print_json(
                    &serde_json::json!({ "name": rec.name, "client_id": rec.client_id, "expires_at": created.expires_at, "secret_out": out }),
                )?;
            } else {
                println!(
                    "created token {} (client id {}), expires {}",
                    rec.name, rec.client_id, created.expires_at
                );
                println!(
                    "secret written to {} (mode 0600); it is not stored anywhere else",
                    out.display()
                );
            }
        }
        None if args.json.json => print_json(&created)?,
        None => {
            println!("created token {}, expires {}", rec.name, created.expires_at);
            println!();
            println!("  CF-Access-Client-Id:     {}", rec.client_id);
            println!("  CF-Access-Client-Secret: {}", secret.expose());
            println!();
            println!("The secret is shown once and only its SHA-256 is stored. Copy it now.");
        }
    }
    Ok(())
}

/// Parse `--grace`: 1 h to 30 d.
pub fn parse_grace(text: &str) -> Result<Duration> {
    let d =
        crate::duration::parse(text).map_err(|e| Failure::bad_input(format!("--grace: {e}")))?;
    let (min, max) = crate::store::tokens::SECRET_GRACE_RANGE;
    if d < min || d > max {
        return Err(Failure::bad_input(format!(
            "--grace {text} is out of range: give 1h to 30d (the previous secret stays valid that long)"
        )));
    }
    Ok(d)
}

/// `token rotate-secret`: a new secret for the same Client ID, the previous one accepted for
/// the grace; or `--end-grace`: refuse the previous one now.
fn rotate_secret(
    paths: &Paths,
    store: &Store,
    now: DateTime<Utc>,
    args: TokenRotateSecretArgs,
) -> Result<()> {
    if args.end_grace {
        let t = crate::store::wait(store.end_secret_grace(&args.name_or_client_id, now, &|t| {
            admin_entry(now, "token_secret_grace_end", t)
        }));
        return report(paths, store, now, t, args.json.json, |t| {
            format!(
                "token {} ({}) refuses its previous secret from now on (token_secret_superseded); secret version {} stays",
                t.name, t.client_id, t.secret_version
            )
        });
    }
    let grace = parse_grace(&args.grace)?;
    if let Some(out) = &args.secret_out {
        crate::rotation::create::check_new_path(out, "--secret-out").map_err(rotation_input)?;
    }
    let (rec, secret) = rotate_token_secret(store, &args.name_or_client_id, grace, now)?;
    deliver_admin(paths, store, now);
    let until = rec
        .previous_secret_expires_at
        .map(rfc3339)
        .unwrap_or_default();
    let view = RotatedSecret {
        name: &rec.name,
        client_id: &rec.client_id,
        client_secret: secret.expose(),
        expires_at: rfc3339(rec.expires_at),
        secret_version: rec.secret_version,
        previous_secret_expires_at: until.clone(),
    };
    match &args.secret_out {
        Some(out) => {
            crate::rotation::create::write_secret_file(out, &rec, &secret).with_context(|| format!("token {} has a new secret but it could not be written; the previous secret still works until {until}: run `botgate token rotate-secret {} --end-grace` only once clients have the new one", rec.name, rec.name))?;
            if args.json.json {
                print_json(&serde_json::json!({
                    "name": rec.name, "client_id": rec.client_id, "expires_at": view.expires_at,
                    "secret_version": rec.secret_version, "previous_secret_expires_at": until,
                    "secret_out": out,
                }))?;
            } else {
                println!(
                    "token {} (client id {}): secret version {} written to {} (mode 0600)",
                    rec.name,
                    rec.client_id,
                    rec.secret_version,
                    out.display()
                );
                println!("the previous secret is accepted until {until}");
            }
        }
        None if args.json.json => print_json(&view)?,
        None => {
            println!(
                "token {}: new secret (version {}), same Client ID",
                rec.name, rec.secret_version
            );
            println!();
            println!("  CF-Access-Client-Id:     {}", rec.client_id);
            println!("  CF-Access-Client-Secret: {}", secret.expose());
            println!();
            println!(
                "The previous secret is accepted until {until}, then refused (token_secret_superseded)."
            );
            println!("The secret is shown once and only its SHA-256 is stored. Copy it now.");
        }
    }
    Ok(())
}

/// The secret-bearing output of `rotate-secret`: `create`'s object plus the versions.
#[derive(Debug, Serialize)]
struct RotatedSecret<'a> {
    name: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    expires_at: String,
    secret_version: i64,
    previous_secret_expires_at: String,
}

/// Give a token a new secret, keeping the previous one for `grace`, with its
/// `token_secret_rotate` admin event; the record and the secret (shown once).
pub fn rotate_token_secret(
    store: &Store,
    name_or_client_id: &str,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<(TokenRecord, ClientSecret)> {
    let secret = ClientSecret::generate();
    let rec = crate::store::wait(store.rotate_token_secret(
        name_or_client_id,
        &secret.hash(),
        now,
        now + grace,
        &|t| admin_entry(now, "token_secret_rotate", t),
    ))
    .map_err(store_err)?;
    Ok((rec, secret))
}

/// `--allow-ip` values as networks; a bad one is bad input (exit 2) naming it.
fn parse_allow_ips(values: &[String]) -> Result<Vec<ipnet::IpNet>> {
    let mut nets = Vec::new();
    for v in values {
        let net = crate::bounds::parse_network(v)
            .map_err(|e| Failure::bad_input(format!("--allow-ip: {e}")))?;
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// `--rate` (with `--burst`) as a rate limit; bad input (exit 2) says what was expected.
fn parse_rate(rate: Option<&str>, burst: Option<i64>) -> Result<Option<RateLimit>> {
    rate.map(|r| RateLimit::parse(r, burst))
        .transpose()
        .map_err(|e| Failure::bad_input(format!("--rate: {e}")))
}

/// `token update`: replace the networks and/or the rate limit, recorded as one admin event
/// (`token_update`, with the new bounds) in the store transaction that makes the change.
fn update(paths: &Paths, store: &Store, now: DateTime<Utc>, args: TokenUpdateArgs) -> Result<()> {
    let changes_ips = !args.allow_ip.is_empty() || args.clear_allow_ip;
    let changes_rate = args.rate.is_some() || args.clear_rate;
    if !changes_ips && !changes_rate {
        return Err(Failure::bad_input(
            "nothing to change: pass --allow-ip CIDR… or --clear-allow-ip, and/or --rate RATE or --clear-rate",
        ));
    }
    let allow_ips = parse_allow_ips(&args.allow_ip)?;
    let rate = parse_rate(args.rate.as_deref(), args.burst)?;
    let current =
        crate::store::wait(store.find_token(&args.name_or_client_id)).map_err(store_err)?;
    let bounds = TokenBounds {
        allow_ips: if changes_ips {
            allow_ips
        } else {
            current.bounds.allow_ips.clone()
        },
        rate_limit: if changes_rate {
            rate
        } else {
            current.bounds.rate_limit
        },
    };
    // By Client ID: the row just read, even if a token of the same name is created meanwhile.
    let t = crate::store::wait(store.set_token_bounds(&current.client_id, &bounds, &|t| {
        admin_entry(now, "token_update", t)
    }));
    report(paths, store, now, t, args.json.json, |t| {
        format!(
            "updated token {} ({}): accepted from {}; rate limit {}; the running gate enforces it within 1 s",
            t.name,
            t.client_id,
            t.bounds
                .allow_ips_text()
                .unwrap_or_else(|| "anywhere".into()),
            t.bounds
                .rate_limit
                .map(|r| r.to_string())
                .unwrap_or_else(|| "no rate limit of its own".into()),
        )
    })
}

/// The shared secret-file checks report bad input (exit 2).
fn rotation_input(e: crate::rotation::RotationError) -> anyhow::Error {
    match e {
        crate::rotation::RotationError::BadInput(m) => Failure::bad_input(m),
        other => other.into(),
    }
}

/// The admin journal entry for `action` on token `t` (the audit line a gate or the CLI writes).
fn admin_entry(now: DateTime<Utc>, action: &str, t: &TokenRecord) -> crate::store::AdminEntry {
    // Bounds appear only when set (or changed), so other token events keep their shape.
    let extra = if t.bounds != TokenBounds::default() || action == "token_update" {
        let (allow_ips, rate_limit) = bounds_view(&t.bounds);
        serde_json::json!({ "allow_ips": allow_ips, "rate_limit": rate_limit })
    } else {
        serde_json::Value::Null
    };
    crate::audit::admin::token_entry(now, action, t, extra)
}

/// Write the journal's pending admin events to the audit log unless a running gate relays
/// them; the change is made either way, so a failure is a warning.
pub(crate) fn deliver_admin(paths: &Paths, store: &Store, now: DateTime<Utc>) {
    if let Err(e) = crate::audit::admin::deliver_pending(store, &paths.audit_log(), now) {
        eprintln!("warning: {e}");
    }
}

pub(crate) fn store_err(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(m) | StoreError::Conflict(m) => Failure::refused(m),
        other => other.into(),
    }
}

/// A token as `list`/`show` present it.
#[derive(Debug, Serialize)]
struct TokenView<'a> {
    name: &'a str,
    client_id: &'a str,
    status: &'static str,
    created_at: String,
    expires_at: String,
    expires_in_seconds: i64,
    revoked_at: Option<String>,
    disabled_at: Option<String>,
    last_seen_at: Option<String>,
    last_seen_ip: Option<&'a str>,
    created_by: &'a str,
    secret_version: i64,
    previous_secret_expires_at: Option<String>,
    /// `--allow-ip` networks; empty: from anywhere.
    allow_ips: Vec<String>,
    /// `--rate`: `{"rate","burst"}` or null.
    rate_limit: Option<RateLimitView>,
    #[serde(skip)]
    expires_in: String,
    #[serde(skip)]
    last_seen: String,
}

impl<'a> TokenView<'a> {
    fn new(t: &'a TokenRecord, now: DateTime<Utc>) -> Self {
        Self {
            name: &t.name,
            client_id: &t.client_id,
            status: t.status(now).as_str(),
            created_at: rfc3339(t.created_at),
            expires_at: rfc3339(t.expires_at),
            expires_in_seconds: (t.expires_at - now).num_seconds(),
            revoked_at: t.revoked_at.map(rfc3339),
            disabled_at: t.disabled_at.map(rfc3339),
            last_seen_at: t.last_seen_at.map(rfc3339),
            last_seen_ip: t.last_seen_ip.as_deref(),
            created_by: &t.created_by,
            secret_version: t.secret_version,
            previous_secret_expires_at: t.previous_secret_expires_at.map(rfc3339),
            allow_ips: bounds_view(&t.bounds).0,
            rate_limit: bounds_view(&t.bounds).1,
            expires_in: if t.revoked_at.is_some() {
                "-".into()
            } else {
                crate::duration::countdown(t.expires_at - now)
            },
            last_seen: t
                .last_seen_at
                .map(|s| crate::duration::ago(now - s))
                .unwrap_or_else(|| "never".into()),
        }
    }
}

/// A token's own rate limit in `--json` and admin events.
#[derive(Debug, Clone, Serialize)]
struct RateLimitView {
    /// `COUNT/UNIT`, e.g. `600/min`.
    rate: String,
    /// Requests allowed at once.
    burst: u32,
}

/// The JSON shape of a token's bounds: its networks, its rate limit.
fn bounds_view(b: &TokenBounds) -> (Vec<String>, Option<RateLimitView>) {
    (
        b.allow_ips.iter().map(|n| n.to_string()).collect(),
        b.rate_limit.map(|r| RateLimitView {
            rate: r.rate_text(),
            burst: r.burst_size().get(),
        }),
    )
}

fn print_list(tokens: &[TokenRecord], now: DateTime<Utc>) -> Result<()> {
    if tokens.is_empty() {
        println!("no tokens yet; create one with `botgate token create ci-deploy-prod`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let v = TokenView::new(t, now);
            vec![
                v.name.into(),
                v.client_id.into(),
                t.created_at.format("%Y-%m-%d").to_string(),
                v.expires_in,
                v.last_seen,
                v.status.into(),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "CLIENT ID",
            "CREATED",
            "EXPIRES IN",
            "LAST SEEN",
            "STATUS",
        ],
        &rows,
    )
}

fn print_show(v: &TokenView<'_>) {
    println!("name:        {}", v.name);
    println!("client id:   {}", v.client_id);
    println!("status:      {}", v.status);
    println!("created:     {} by {}", v.created_at, v.created_by);
    println!("expires:     {} ({})", v.expires_at, v.expires_in);
    if let Some(r) = &v.revoked_at {
        println!("revoked:     {r}");
    }
    match &v.previous_secret_expires_at {
        Some(until) => println!(
            "secret:      version {} (version {} accepted until {until})",
            v.secret_version,
            v.secret_version - 1
        ),
        None => println!("secret:      version {}", v.secret_version),
    }
    if v.allow_ips.is_empty() {
        println!("allowed ips: anywhere");
    } else {
        println!("allowed ips: {}", v.allow_ips.join(", "));
    }
    match &v.rate_limit {
        Some(r) => println!("rate limit:  {} (burst {})", r.rate, r.burst),
        None => println!("rate limit:  none of its own (policies' limits apply)"),
    }
    println!(
        "last seen:   {}{}",
        v.last_seen,
        v.last_seen_ip
            .map(|ip| format!(" from {ip}"))
            .unwrap_or_default()
    );
}
