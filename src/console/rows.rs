//! The rows each view shows, filtered and in the chosen sort order. Shared by `update` (which
//! row is selected, what Enter opens) and the views (what to draw), so both always agree.

use std::ops::Range;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::duration::{ago, countdown};

use super::aggregate::IdentityStats;
use super::alerts::{AlertRow, AlertState};
use super::app::{AppState, ViewId};
use super::compact::{EventFields, EventRef};
use super::model::{AppRow, CertRow, PolicyRow, TokenRow};

/// Identities of the selected time interval, filtered and sorted (req/min, deny %, last seen,
/// or name).
pub fn identities(s: &AppState) -> Vec<&IdentityStats> {
    let now = s.shown_end_sec();
    let mut v: Vec<(u64, &IdentityStats)> = s
        .shown_identities()
        .iter()
        .filter(|i| s.filter.matches_identity(i))
        .map(|i| (i.per_minute(now), i))
        .collect();
    match s.sort[ViewId::Traffic.index()] {
        0 => v.sort_unstable_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.total.cmp(&a.1.total))
                .then(a.1.name.cmp(&b.1.name))
        }),
        1 => v.sort_unstable_by(|a, b| {
            b.1.deny_pct()
                .total_cmp(&a.1.deny_pct())
                .then(a.1.name.cmp(&b.1.name))
        }),
        2 => v.sort_unstable_by(|a, b| {
            b.1.last_seen
                .cmp(&a.1.last_seen)
                .then(a.1.name.cmp(&b.1.name))
        }),
        _ => v.sort_unstable_by(|a, b| a.1.name.cmp(&b.1.name)),
    }
    v.into_iter().map(|(_, i)| i).collect()
}

/// When a credential was last seen: the inventory's record or live traffic, whichever is newer.
pub fn last_seen(s: &AppState, name: &str, stored: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    let live = s.shown_traffic().identities.get(name).map(|i| i.last_seen);
    stored.max(live)
}

/// Tokens, filtered and sorted (expiry with revoked last, name, or last seen).
pub fn tokens(s: &AppState) -> Vec<&TokenRow> {
    let mut v: Vec<&TokenRow> = s
        .tokens
        .iter()
        .filter(|t| {
            s.filter
                .matches_text(&[&t.name, &t.client_id, t.status(s.now).label()])
        })
        .collect();
    match s.sort[ViewId::Tokens.index()] {
        0 => v.sort_by(|a, b| {
            (a.revoked, a.expires_at, &a.name).cmp(&(b.revoked, b.expires_at, &b.name))
        }),
        1 => v.sort_by(|a, b| (&a.name, a.revoked).cmp(&(&b.name, b.revoked))),
        _ => v.sort_by_cached_key(|t| {
            (
                std::cmp::Reverse(last_seen(s, &t.name, t.last_seen_at)),
                t.name.clone(),
            )
        }),
    }
    v
}

/// Certificates, filtered and sorted (expiry with revoked last, CN, or last seen).
pub fn certs(s: &AppState) -> Vec<&CertRow> {
    let mut v: Vec<&CertRow> = s
        .certs
        .iter()
        .filter(|c| {
            s.filter.matches_text(&[
                &c.common_name,
                &c.issuer,
                &c.serial,
                c.status(s.now).label(),
            ])
        })
        .collect();
    match s.sort[ViewId::Certs.index()] {
        0 => v.sort_by(|a, b| {
            (a.revoked, a.not_after, &a.common_name).cmp(&(b.revoked, b.not_after, &b.common_name))
        }),
        1 => v.sort_by(|a, b| (&a.common_name, &a.serial).cmp(&(&b.common_name, &b.serial))),
        _ => v.sort_by_cached_key(|c| {
            (
                std::cmp::Reverse(last_seen(s, &c.common_name, c.last_seen_at)),
                c.serial.clone(),
            )
        }),
    }
    v
}

/// Alerts, filtered, newest first (or most severe first), open before resolved.
pub fn alerts(s: &AppState) -> Vec<&AlertRow> {
    let mut v: Vec<&AlertRow> = s
        .shown_alerts()
        .iter()
        .filter(|a| {
            s.filter.matches_text(&[
                a.credential.as_deref().unwrap_or(""),
                &a.title,
                &a.rule,
                a.severity.label(),
            ])
        })
        .collect();
    let open = |a: &AlertRow| a.state == AlertState::Open;
    match s.sort[ViewId::Alerts.index()] {
        0 => v.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then(b.severity.cmp(&a.severity))
                .then(a.id.cmp(&b.id))
        }),
        _ => v.sort_by(|a, b| {
            (open(b), b.severity, b.last_seen)
                .cmp(&(open(a), a.severity, a.last_seen))
                .then(a.id.cmp(&b.id))
        }),
    }
    v
}

/// One line of the Policies view: an app's policy in evaluation order (or the app alone).
#[derive(Debug, Clone, Copy)]
pub struct PolicyLine<'a> {
    pub app: &'a AppRow,
    /// Position in the app's list, from 1.
    pub order: usize,
    pub policy: Option<&'a PolicyRow>,
}

/// Apps and their policies flattened into lines, filtered by app, policy or admitted credential.
pub fn policy_lines(s: &AppState) -> Vec<PolicyLine<'_>> {
    let mut out = Vec::new();
    for app in &s.apps {
        if app.policies.is_empty() {
            if s.filter.matches_text(&[&app.name]) {
                out.push(PolicyLine {
                    app,
                    order: 0,
                    policy: None,
                });
            }
            continue;
        }
        for (i, p) in app.policies.iter().enumerate() {
            let admits = p.admits.join(" ");
            if s.filter.matches_text(&[
                &app.name,
                &app.hostnames.join(" "),
                &p.name,
                &p.action,
                &admits,
            ]) {
                out.push(PolicyLine {
                    app,
                    order: i + 1,
                    policy: Some(p),
                });
            }
        }
    }
    out
}

/// Sequence numbers of the shown ring's events in the selected time interval (all without
/// one).
fn log_range(s: &AppState) -> Range<u64> {
    let ring = &s.shown_traffic().ring;
    match s.shown_interval() {
        Some(iv) => ring.seq_range(iv.start, iv.end),
        None => ring.first_seq()..ring.first_seq() + ring.len() as u64,
    }
}

/// Positions in the shown filter matches of the events in `seqs`.
fn filtered_range(s: &AppState, seqs: &Range<u64>) -> Range<usize> {
    let f = s.shown_filtered();
    let lo = f.partition_point(|&q| q < seqs.start);
    lo..f.partition_point(|&q| q < seqs.end).max(lo)
}

/// Events shown in the Log view and the live tail: of the selected time interval, filtered
/// when a filter is set.
pub fn log_len(s: &AppState) -> usize {
    let seqs = log_range(s);
    if s.filter.is_empty() {
        (seqs.end - seqs.start) as usize
    } else {
        filtered_range(s, &seqs).len()
    }
}

/// The `i`-th newest event of the Log view (0 = newest).
pub fn log_event(s: &AppState, i: usize) -> Option<EventRef<'_>> {
    let seqs = log_range(s);
    let seq = if s.filter.is_empty() {
        seqs.end
            .checked_sub(i as u64 + 1)
            .filter(|q| *q >= seqs.start)?
    } else {
        let at = filtered_range(s, &seqs);
        let j = at.end.checked_sub(i + 1).filter(|j| *j >= at.start)?;
        *s.shown_filtered().get(j)?
    };
    s.shown_traffic().ring.get(seq)
}

/// Rows in `view`'s selectable table.
pub fn row_count(s: &AppState, view: ViewId) -> usize {
    match view {
        ViewId::Traffic => {
            if s.filter.is_empty() {
                s.shown_identities().len()
            } else {
                s.shown_identities()
                    .iter()
                    .filter(|i| s.filter.matches_identity(i))
                    .count()
            }
        }
        ViewId::Tokens => tokens(s).len(),
        ViewId::Certs => certs(s).len(),
        ViewId::Alerts => alerts(s).len(),
        ViewId::Policies => policy_lines(s).len(),
        ViewId::Rotations => s.rotations.len(),
        ViewId::Log => log_len(s),
        ViewId::Issuers => s.issuers.len(),
    }
}

/// Seconds the details window's sparklines cover, and seconds per character.
const SPARK_SECS: i64 = 120;
const SPARK_STEP: i64 = 2;

/// `values` as block characters scaled to the largest (a blank for none).
pub fn sparkline(values: &[u32]) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 {
                ' '
            } else {
                let i = (u64::from(v) * 8).div_ceil(u64::from(max)) as usize;
                LEVELS[i.clamp(1, 8) - 1]
            }
        })
        .collect()
}

/// Events of one identity summarised for its details window: allowed/denied by reason, client
/// IPs with countries, user agents, the last events (from the ring the views show), its open
/// alerts and its rotations. Scans the ring once, on Enter only.
pub fn activity(s: &AppState, name: &str) -> Vec<String> {
    use std::collections::BTreeMap;
    let ring = &s.shown_traffic().ring;
    let (mut allowed, mut denied) = (0u64, 0u64);
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ips: Vec<(&str, &str)> = Vec::new();
    let mut agents: Vec<&str> = Vec::new();
    let mut last = Vec::new();
    let end = s.shown_end_sec();
    let mut per_column = [(0u32, 0u32); SPARK_SECS as usize / SPARK_STEP as usize];
    for e in (0..ring.len()).filter_map(|i| ring.newest(i)) {
        if e.kind() != crate::audit::EventKind::Access || e.identity() != Some(name) {
            continue;
        }
        let age = end - e.created_at().timestamp();
        if (0..SPARK_SECS).contains(&age) {
            let c = &mut per_column[((SPARK_SECS - 1 - age) / SPARK_STEP) as usize];
            if e.allowed() {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
        if e.allowed() {
            allowed += 1;
        } else {
            denied += 1;
            *reasons.entry(e.deny_reason().unwrap_or("-")).or_default() += 1;
        }
        let ip = (e.ip_address().unwrap_or("-"), e.country().unwrap_or("-"));
        if ips.len() < 5 && !ips.contains(&ip) {
            ips.push(ip);
        }
        if let Some(ua) = e.user_agent()
            && agents.len() < 3
            && !agents.contains(&ua)
        {
            agents.push(ua);
        }
        if last.len() < 5 {
            last.push(format!(
                "  {} {:<6} {} {} {} {}",
                e.created_at().format("%H:%M:%S%.3f"),
                if e.allowed() { "allow" } else { "deny" },
                e.status().map_or("-".to_string(), |c| c.to_string()),
                e.method().unwrap_or("-"),
                e.path().unwrap_or("-"),
                e.deny_reason().unwrap_or(""),
            ));
        }
    }
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let allowed_cols: Vec<u32> = per_column.iter().map(|c| c.0).collect();
    let denied_cols: Vec<u32> = per_column.iter().map(|c| c.1).collect();
    let peak = |cols: &[u32]| {
        let max = cols.iter().copied().max().unwrap_or(0);
        format!("{:.1}/s", f64::from(max) / SPARK_STEP as f64)
    };
    let mut lines = vec![
        format!(
            "allowed/s    {} peak {}, last {SPARK_SECS} s",
            sparkline(&allowed_cols),
            peak(&allowed_cols)
        ),
        format!(
            "denied/s     {} peak {}",
            sparkline(&denied_cols),
            peak(&denied_cols)
        ),
        format!("in the ring  {allowed} allowed, {denied} denied"),
        format!(
            "denied by    {}",
            if reasons.is_empty() {
                "-".into()
            } else {
                reasons.join(", ")
            }
        ),
        format!(
            "client ips   {}",
            if ips.is_empty() {
                "-".into()
            } else {
                ips.iter()
                    .map(|(ip, cc)| format!("{ip} ({cc})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        format!(
            "user agents  {}",
            if agents.is_empty() {
                "-".into()
            } else {
                agents.join(", ")
            }
        ),
    ];
    let open: Vec<&str> = s
        .shown_alerts()
        .iter()
        .filter(|a| a.state == AlertState::Open && a.credential.as_deref() == Some(name))
        .map(|a| a.title.as_str())
        .collect();
    lines.push(format!(
        "open alerts  {}",
        if open.is_empty() {
            "none".into()
        } else {
            open.join("; ")
        }
    ));
    let rotations: Vec<String> = s
        .rotations
        .iter()
        .filter(|r| r.old_name == name || r.view.new.as_deref() == Some(name))
        .map(|r| format!("{} {}", r.view.id, r.view.state.as_str()))
        .collect();
    lines.push(format!(
        "rotation     {}",
        if rotations.is_empty() {
            "none".into()
        } else {
            rotations.join(", ")
        }
    ));
    lines.push("last events".into());
    if last.is_empty() {
        last.push("  none in the ring".into());
    }
    lines.extend(last);
    lines
}

/// `a, b, c`, or `none`.
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Title and lines of the details window for the selected row of the current view.
pub fn details(s: &AppState) -> Option<(String, Vec<String>)> {
    let sel = s.selected[s.view.index()];
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
    let seen = |d: Option<DateTime<Utc>>| {
        d.map_or("never".to_string(), |d| {
            format!("{} ({})", t(d), ago(s.now - d))
        })
    };
    match s.view {
        ViewId::Traffic => {
            let i = *identities(s).get(sel)?;
            let mut lines = vec![
                format!("method       {}", i.method.as_str()),
                format!(
                    "requests     {} ({} denied, {:.1}%)",
                    i.total,
                    i.denied,
                    i.deny_pct()
                ),
                format!("req/min      {}", i.per_minute(s.shown_end_sec())),
                format!("first seen   {}", seen(Some(i.first_seen))),
                format!("last seen    {}", seen(Some(i.last_seen))),
                format!("countries    {}", i.countries.joined()),
                format!("apps         {}", i.apps.joined()),
            ];
            lines.extend(activity(s, &i.name));
            Some((format!("identity {}", i.name), lines))
        }
        ViewId::Tokens => {
            let tk = *tokens(s).get(sel)?;
            let status = tk.status(s.now);
            let mut lines = vec![
                format!("client id    {}", tk.client_id),
                format!("status       {}", status.label()),
                format!("created      {}", t(tk.created_at)),
                format!(
                    "expires      {} ({})",
                    t(tk.expires_at),
                    countdown(tk.expires_at - s.now)
                ),
                format!("rotation due {}", t(tk.rotation_due())),
                format!(
                    "last seen    {}",
                    seen(last_seen(s, &tk.name, tk.last_seen_at))
                ),
                format!("policies     {}", listed(&tk.policies)),
            ];
            lines.extend(activity(s, &tk.name));
            Some((format!("token {}", tk.name), lines))
        }
        ViewId::Certs => {
            let c = *certs(s).get(sel)?;
            let mut lines = vec![
                format!("status       {}", c.status(s.now).label()),
                format!("issuer       {}", c.issuer),
                format!("serial       {}", c.serial),
                format!("sha-256      {}", c.fingerprint_sha256),
                format!(
                    "not after    {} ({})",
                    t(c.not_after),
                    countdown(c.not_after - s.now)
                ),
                format!("rotation due {}", t(c.rotation_due())),
                format!("key type     {}", c.key_type),
                format!(
                    "last seen    {}",
                    seen(last_seen(s, &c.common_name, c.last_seen_at))
                ),
                format!("source       {}", c.source),
                format!("policies     {}", listed(&c.policies)),
            ];
            lines.extend(activity(s, &c.common_name));
            Some((format!("certificate {}", c.common_name), lines))
        }
        ViewId::Alerts => {
            let a = *alerts(s).get(sel)?;
            let mut lines = vec![
                format!("id           {}", a.id),
                format!("rule         {}", a.rule),
                format!("severity     {}", a.severity.label()),
                format!(
                    "state        {}",
                    if a.state == AlertState::Open {
                        "open"
                    } else {
                        "resolved"
                    }
                ),
                format!("credential   {}", a.credential.as_deref().unwrap_or("-")),
                format!("count        {}", a.count),
                format!("first seen   {}", seen(Some(a.first_seen))),
                format!("last seen    {}", seen(Some(a.last_seen))),
                "evidence".to_string(),
            ];
            lines.extend(a.evidence.iter().map(|(k, v)| format!("  {k:<11} {v}")));
            Some((a.title.clone(), lines))
        }
        ViewId::Policies => {
            let l = *policy_lines(s).get(sel)?;
            let mut lines = vec![
                format!("app          {}", l.app.name),
                format!("hostnames    {}", l.app.hostnames.join(", ")),
            ];
            if let Some(p) = l.policy {
                lines.push(format!("policy #{}    {}", l.order, p.name));
                lines.push(format!("action       {}", p.action));
                lines.push("admits".into());
                lines.extend(p.admits.iter().map(|a| format!("  {a}")));
            }
            Some((format!("app {}", l.app.name), lines))
        }
        ViewId::Rotations => {
            let r = &s.rotations.get(sel)?.view;
            let mut lines = vec![
                format!("kind         {}", r.kind.as_str()),
                format!("old          {}", r.old),
                format!("new          {}", r.new.as_deref().unwrap_or("-")),
                format!("state        {}", r.state.as_str()),
                format!("quiet period {}", r.quiet_period),
                format!("min requests {}", r.min_requests),
            ];
            lines.extend(
                r.new_credential_files
                    .iter()
                    .map(|f| format!("file         {f}")),
            );
            lines.push("evidence".into());
            lines.extend(r.evidence.iter().map(|e| format!("  {e}")));
            Some((format!("rotation {}", r.id), lines))
        }
        ViewId::Log => {
            let e = log_event(s, sel)?.to_event();
            let json = serde_json::to_string_pretty(&e).unwrap_or_default();
            Some((
                format!("event {}", e.ray_id),
                json.lines().map(str::to_string).collect(),
            ))
        }
        ViewId::Issuers => {
            let r = s.issuers.get(sel)?;
            let json = serde_json::to_string_pretty(&r.view).unwrap_or_default();
            Some((
                format!("issuer {} (as `botgate issuer show --json`)", r.view.name),
                json.lines().map(str::to_string).collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sparkline;

    #[test]
    fn sparkline_scales_to_the_largest_and_leaves_none_blank() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(sparkline(&[3, 3]), "██");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[]), "");
    }
}
