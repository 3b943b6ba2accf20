//! Whole-console tests: build the state from fixed data and a fixed clock, draw to a
//! `TestBackend`, send keys, and compare with committed snapshots; colour meaning is checked on
//! the buffer (expired = the theme's critical colour, expiring = warn).

use std::sync::Arc;

use botgate::audit::{AccessEvent, EventKind};
use botgate::console::aggregate::Limits;
use botgate::console::app::{Effect, Overlay};
use botgate::console::bench;
use botgate::console::theme::Theme;
use botgate::console::{
    AppRow, AppState, CertRow, HeaderInfo, Msg, PolicyRow, TokenRow, ViewId, rows, update,
};
use chrono::{DateTime, Duration, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui::buffer::Buffer;
use ratatui::style::Color;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn token(
    name: &str,
    created_days_ago: i64,
    expires_in: Duration,
    revoked: bool,
    seen_secs_ago: Option<i64>,
    policies: &[&str],
) -> TokenRow {
    TokenRow {
        name: name.into(),
        client_id: format!("{:0>32}.access", name.len()),
        created_at: now() - Duration::days(created_days_ago),
        expires_at: now() + expires_in,
        revoked,
        disabled: false,
        last_seen_at: seen_secs_ago.map(|s| now() - Duration::seconds(s)),
        policies: policies.iter().map(|p| p.to_string()).collect(),
        // The default token cadence (90 days from creation).
        rotation_due_at: now() - Duration::days(created_days_ago) + Duration::days(90),
        bounds: Default::default(),
    }
}

fn cert(cn: &str, serial: &str, expires_in: Duration, revoked: bool) -> CertRow {
    CertRow {
        common_name: cn.into(),
        issuer: "botgate Device CA".into(),
        serial: serial.into(),
        fingerprint_sha256: "ab".repeat(32),
        not_after: now() + expires_in,
        key_type: "ecdsa-p256".into(),
        revoked,
        last_seen_at: None,
        source: "store".into(),
        // A one-year certificate under the default certificate cadence: due when it expires.
        rotation_due_at: now() + expires_in,
        policies: if cn.starts_with("device-") {
            vec!["telemetry.example.com / Factory devices".into()]
        } else {
            Vec::new()
        },
    }
}

fn tokens() -> Vec<TokenRow> {
    let mut bound = token(
        "ci-deploy-prod",
        100,
        Duration::days(265),
        false,
        Some(3),
        &["api.example.com / CI deployment"],
    );
    bound.bounds = botgate::bounds::TokenBounds {
        allow_ips: vec![botgate::bounds::parse_network("10.1.0.0/16").unwrap()],
        rate_limit: Some(botgate::bounds::RateLimit::parse("600/min", None).unwrap()),
    };
    let mut v = vec![bound];
    v.extend(tokens_unbound());
    v
}

fn tokens_unbound() -> Vec<TokenRow> {
    vec![
        token(
            "ci-deploy-staging",
            70,
            Duration::days(20) + Duration::hours(4),
            false,
            Some(40),
            &["api.example.com / CI deployment"],
        ),
        token(
            "monitoring-probe-prod",
            10,
            Duration::days(5) + Duration::minutes(30),
            false,
            Some(1),
            &["api.example.com / Probes"],
        ),
        token(
            "backup-cron-prod",
            360,
            -Duration::days(2),
            false,
            Some(86_400 * 3),
            &[],
        ),
        token(
            "legacy-sync-prod",
            200,
            Duration::days(100),
            true,
            None,
            &[],
        ),
    ]
}

fn certs() -> Vec<CertRow> {
    vec![
        cert(
            "device-0001.factory.corp",
            "3f9a0c11d2e4b5a6",
            Duration::days(300),
            false,
        ),
        cert(
            "device-0002.factory.corp",
            "41bb02c9e0f1a2b3",
            Duration::days(20),
            false,
        ),
        cert(
            "device-0003.factory.corp",
            "5c0de1f2a3b4c5d6",
            -Duration::hours(5),
            false,
        ),
        cert(
            "device-0004.factory.corp",
            "6d1ef2a3b4c5d6e7",
            Duration::days(200),
            true,
        ),
    ]
}

fn apps() -> Vec<AppRow> {
    vec![
        AppRow {
            name: "api.example.com".into(),
            hostnames: vec!["api.example.com".into()],
            aud: Some("4f2c1a0e9b7d6c5a3e1f0d9c8b7a6e5f4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a".into()),
            policies: vec![
                PolicyRow {
                    name: "CI deployment".into(),
                    action: "service_auth".into(),
                    admits: vec!["ci-deploy-prod".into(), "ci-deploy-staging".into()],
                },
                PolicyRow {
                    name: "Probes".into(),
                    action: "service_auth".into(),
                    admits: vec!["monitoring-probe-prod".into()],
                },
                PolicyRow {
                    name: "Block the rest".into(),
                    action: "block".into(),
                    admits: vec!["everyone".into()],
                },
            ],
        },
        AppRow {
            name: "telemetry.example.com".into(),
            hostnames: vec!["telemetry.example.com".into(), "t.example.com".into()],
            aud: None,
            policies: vec![PolicyRow {
                name: "Factory devices".into(),
                action: "non_identity".into(),
                admits: vec![
                    "CN ~ ^device-[0-9]+\\.factory\\.corp$ (3 certs)".into(),
                    "(require country SG,VN)".into(),
                ],
            }],
        },
    ]
}

fn detector_alert() -> Arc<AccessEvent> {
    let mut e = AccessEvent::empty(
        EventKind::Alert,
        now() - Duration::seconds(30),
        "a1b2c3d4e5f60718".into(),
    );
    e.decision = "unexpected_country".into();
    e.service_token_name = Some("ci-deploy-prod".into());
    e.details = Some(serde_json::json!({
        "alert_id": "unexpected_country:ci-deploy-prod", "rule": "unexpected_country", "severity": "warning",
        "title": "ci-deploy-prod used from a new country (RU)", "state": "open", "count": 4,
        "first_seen": "2026-11-28T11:59:20Z", "last_seen": "2026-11-28T11:59:30Z",
        "evidence": {"countries": ["RU"], "ips": ["127.0.4.9"], "requests": 4}
    }));
    Arc::new(e)
}

/// An expiry alert as the inventory detector raises it (the console has no rules of its own).
fn expiry_alert() -> Arc<AccessEvent> {
    let mut e = AccessEvent::empty(
        EventKind::Alert,
        now() - Duration::seconds(40),
        "b1b2c3d4e5f60718".into(),
    );
    e.decision = "credential_expiring".into();
    e.service_token_name = Some("backup-cron-prod".into());
    e.details = Some(serde_json::json!({
        "alert_id": "credential_expiring:backup-cron-prod", "rule": "credential_expiring",
        "severity": "critical", "title": "token backup-cron-prod expires in 5d", "state": "open",
        "count": 1, "first_seen": "2026-11-28T11:59:20Z", "last_seen": "2026-11-28T11:59:20Z",
        "evidence": {"kind": "token"}
    }));
    Arc::new(e)
}

/// The fixture every snapshot starts from: 5 requests/s over the last two minutes plus a spike,
/// an inventory,
/// policies, an alert from a detector.
fn state() -> AppState {
    let header = HeaderInfo {
        listen: vec![
            "http://127.0.0.1:8080".into(),
            "https://127.0.0.1:8443".into(),
        ],
        source: "in-process bus".into(),
        read_only: true,
        ..HeaderInfo::default()
    };
    let mut s = AppState::new(
        Theme::default(),
        header,
        Limits::default(),
        now() - Duration::minutes(62),
    );
    update(&mut s, Msg::Tick(now()));
    update(
        &mut s,
        Msg::Inventory {
            tokens: tokens(),
            certs: certs(),
            store_error: None,
        },
    );
    update(
        &mut s,
        Msg::Policies {
            apps: apps(),
            reload_error: None,
        },
    );
    let mut events = bench::synthetic_events(600, now() - Duration::seconds(120), 5);
    // A runaway script: 60 requests in one second, 40 s ago.
    events.extend((0..60).map(|i| {
        Arc::new(bench::synthetic_event(
            1_000_003 + 8 * i,
            now() - Duration::seconds(40),
            1_000_000,
        ))
    }));
    events.push(detector_alert());
    events.push(expiry_alert());
    events.sort_by_key(|e| e.created_at);
    bench::ingest(&mut s, &events);
    update(&mut s, Msg::Resize(160, 45));
    s
}

fn key(s: &mut AppState, code: KeyCode) {
    update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn typed(s: &mut AppState, text: &str) {
    for c in text.chars() {
        key(s, KeyCode::Char(c));
    }
}

fn draw(s: &AppState, w: u16, h: u16) -> String {
    buffer_text(&bench::render(s, w, h))
}

fn buffer_text(b: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..b.area.height {
        let mut skip = 0;
        for x in 0..b.area.width {
            // Wide characters occupy two cells; the second is blank in the buffer.
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = b[(x, y)].symbol();
            skip = unicode_width(sym).saturating_sub(1);
            out.push_str(sym);
        }
        out.push('\n');
    }
    out
}

fn unicode_width(s: &str) -> usize {
    // The fixture only uses narrow symbols; keep this simple and explicit.
    if s.chars()
        .any(|c| ('\u{1100}'..='\u{FFDC}').contains(&c) && !"▶│─┌┐└┘├┤┬┴┼█▁▂▃▄▅▆▇·…↑↓×".contains(c))
    {
        2
    } else {
        1
    }
}

/// Position of the first cell of `needle` on the row that contains `row_marker`.
fn find_on_row(b: &Buffer, row_marker: &str, needle: &str) -> (u16, u16) {
    for y in 0..b.area.height {
        let line: String = (0..b.area.width)
            .map(|x| b[(x, y)].symbol().to_string())
            .collect();
        if let (Some(_), Some(_)) = (line.find(row_marker), line.find(needle)) {
            // Map byte offset to cell column (symbols are single cells here).
            let cells: Vec<String> = (0..b.area.width)
                .map(|x| b[(x, y)].symbol().to_string())
                .collect();
            let mut acc = String::new();
            for (x, c) in cells.iter().enumerate() {
                if acc.ends_with(needle) {
                    return ((x - needle.chars().count()) as u16, y);
                }
                acc.push_str(c);
                if acc.ends_with(needle) && line[acc.len()..].is_empty() {
                    return ((x + 1 - needle.chars().count()) as u16, y);
                }
            }
            if acc.ends_with(needle) {
                return ((cells.len() - needle.chars().count()) as u16, y);
            }
        }
    }
    panic!("no row with {row_marker:?} and {needle:?}");
}

#[test]
fn snapshot_every_view_at_160x45() {
    let mut s = state();
    for v in ViewId::ALL {
        key(
            &mut s,
            KeyCode::Char(char::from_digit(v.index() as u32 + 1, 10).unwrap()),
        );
        assert_eq!(s.view, v);
        insta::assert_snapshot!(
            format!("view_{}_160x45", v.title().to_lowercase()),
            draw(&s, 160, 45)
        );
    }
}

#[test]
fn snapshot_traffic_and_tokens_at_minimum_size() {
    let mut s = state();
    insta::assert_snapshot!("view_traffic_80x24", draw(&s, 80, 24));
    key(&mut s, KeyCode::Char('2'));
    insta::assert_snapshot!("view_tokens_80x24", draw(&s, 80, 24));
}

#[test]
fn below_80x24_says_terminal_too_small() {
    let s = state();
    for (w, h) in [(79, 24), (80, 23), (40, 10)] {
        let text = draw(&s, w, h);
        assert!(
            text.contains("terminal too small (need 80×24)"),
            "{w}x{h}:\n{text}"
        );
    }
    assert!(!draw(&s, 80, 24).contains("too small"));
}

#[test]
fn snapshot_policies_with_invalid_reload_banner() {
    let mut s = state();
    update(
        &mut s,
        Msg::Policies {
            apps: apps(),
            reload_error: Some("policy.toml:14:1: unknown field `bogus`".into()),
        },
    );
    key(&mut s, KeyCode::Char('5'));
    insta::assert_snapshot!("view_policies_reload_error", draw(&s, 160, 45));
}

#[test]
fn expired_rows_use_the_critical_colour_and_expiring_ones_warn() {
    for theme in ["dark", "light", "high-contrast"] {
        let mut s = state();
        s.theme = Theme::builtin(theme).unwrap().unwrap();
        let c = s.theme.colors;
        key(&mut s, KeyCode::Char('2'));
        // The selected row wears the selection style; select one not under test.
        update(
            &mut s,
            Msg::Key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)),
        );
        let b = bench::render(&s, 160, 45);
        let cases = [
            ("backup-cron-prod", "expired", c.critical),
            ("monitoring-probe-prod", "critical", c.critical),
            ("ci-deploy-staging", "warn", c.warn),
            ("ci-deploy-prod", "ok", c.ok),
        ];
        for (row, label, colour) in cases {
            let (x, y) = find_on_row(&b, row, &format!(" {label} "));
            assert_eq!(b[(x + 1, y)].fg, colour, "{theme}: {row} status {label}");
            let (nx, ny) = find_on_row(&b, row, row);
            if label != "ok" {
                assert_eq!(
                    b[(nx, ny)].fg,
                    colour,
                    "{theme}: the whole {row} row is coloured"
                );
            }
        }
        key(&mut s, KeyCode::Char('3'));
        update(
            &mut s,
            Msg::Key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)),
        );
        let b = bench::render(&s, 160, 45);
        let (x, y) = find_on_row(&b, "device-0003", " expired ");
        assert_eq!(b[(x + 1, y)].fg, c.critical, "{theme}: expired cert");
        let (x, y) = find_on_row(&b, "device-0002", " warn ");
        assert_eq!(b[(x + 1, y)].fg, c.warn, "{theme}: expiring cert");
    }
}

#[test]
fn mono_theme_keeps_labels_and_selection_symbol() {
    let mut s = state();
    s.theme = Theme::builtin("mono").unwrap().unwrap();
    key(&mut s, KeyCode::Char('2'));
    let b = bench::render(&s, 160, 45);
    let text = buffer_text(&b);
    assert!(text.contains("▶ "), "selection symbol");
    for label in ["expired", "critical", "warn", "revoked", " ok "] {
        assert!(text.contains(label), "{label}");
    }
    assert!(
        b.content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
        "no colour at all"
    );
}

#[test]
fn countdowns_tick_with_the_clock() {
    let mut s = state();
    key(&mut s, KeyCode::Char('2'));
    assert!(draw(&s, 160, 45).contains("5d 0h 30m"));
    update(&mut s, Msg::Tick(now() + Duration::seconds(60)));
    assert!(draw(&s, 160, 45).contains("5d 0h 29m"));
}

#[test]
fn number_keys_tab_and_backtab_switch_views() {
    let mut s = state();
    key(&mut s, KeyCode::Char('4'));
    assert_eq!(s.view, ViewId::Alerts);
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.view, ViewId::Policies);
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT)),
    );
    key(&mut s, KeyCode::BackTab);
    assert_eq!(s.view, ViewId::Certs);
    key(&mut s, KeyCode::Char('7'));
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.view, ViewId::Issuers);
    key(&mut s, KeyCode::Char('8'));
    assert_eq!(s.view, ViewId::Issuers);
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.view, ViewId::Traffic, "Tab wraps");
    key(&mut s, KeyCode::Char('9'));
    assert_eq!(s.view, ViewId::Traffic, "unbound digit does nothing");
}

#[test]
fn filter_narrows_the_tail_and_log_and_esc_clears() {
    let mut s = state();
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "deny");
    assert_eq!(s.filter_input.as_deref(), Some("deny"));
    assert!(
        draw(&s, 160, 45).contains("/deny█"),
        "typing shows in the tab line"
    );
    key(&mut s, KeyCode::Enter);
    assert_eq!((s.filter_input.as_deref(), s.filter.text()), (None, "deny"));
    let n = rows::log_len(&s);
    assert_eq!(
        n, 75,
        "one in eight of the 600 steady synthetic events is denied"
    );
    assert!((0..n).all(|i| !rows::log_event(&s, i).unwrap().to_event().allowed));
    // New events keep the filtered list current.
    let mut denied = bench::synthetic_event(7, now(), 1);
    denied.ray_id = "fresh".into();
    update(&mut s, Msg::Event(Arc::new(denied)));
    assert_eq!(rows::log_event(&s, 0).unwrap().to_event().ray_id, "fresh");
    key(&mut s, KeyCode::Esc);
    assert!(s.filter.is_empty());
    assert_eq!(rows::log_len(&s), 663);

    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "country:RU ci-deploy");
    key(&mut s, KeyCode::Enter);
    let n = rows::log_len(&s);
    assert!(n > 0);
    for i in 0..n {
        let e = rows::log_event(&s, i).unwrap().to_event();
        assert_eq!(e.country.as_deref(), Some("RU"));
        assert!(e.identity().unwrap().contains("ci-deploy"));
    }
    insta::assert_snapshot!("view_traffic_filtered", draw(&s, 160, 45));
}

#[test]
fn filter_input_backspace_and_cancel() {
    let mut s = state();
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "denyx");
    key(&mut s, KeyCode::Backspace);
    assert_eq!(s.filter.text(), "deny");
    key(&mut s, KeyCode::Char('q'));
    assert!(!s.should_quit, "q is text while typing a filter");
    key(&mut s, KeyCode::Esc);
    assert!(s.filter_input.is_none() && s.filter.is_empty());
}

#[test]
fn help_overlay_lists_the_keymap_and_closes() {
    let mut s = state();
    key(&mut s, KeyCode::Char('?'));
    assert!(matches!(s.overlay, Some(Overlay::Help { .. })));
    let text = draw(&s, 160, 45);
    for b in botgate::console::keymap::BINDINGS
        .iter()
        .filter(|b| b.context == botgate::console::keymap::Context::Normal)
    {
        assert!(text.contains(b.help), "help shows {:?}", b.help);
    }
    insta::assert_snapshot!("overlay_help", text);
    key(&mut s, KeyCode::Char('2'));
    assert_eq!(
        s.view,
        ViewId::Traffic,
        "keys go to the overlay while it is open"
    );
    key(&mut s, KeyCode::Esc);
    assert!(s.overlay.is_none());
}

#[test]
fn help_overlay_separates_a_long_command_usage_from_its_help() {
    let mut s = state();
    s.header.read_only = false;
    key(&mut s, KeyCode::Char('?'));
    // The help is longer than the screen: scroll to the last command.
    let mut text = draw(&s, 160, 45);
    for _ in 0..30 {
        if text.contains(":rotate NAME") {
            break;
        }
        key(&mut s, KeyCode::Char('j'));
        text = draw(&s, 160, 45);
    }
    let line = text
        .lines()
        .find(|l| l.contains(":rotate NAME [--new-cn NEWCN]"))
        .unwrap_or_else(|| panic!("no :rotate line in\n{text}"));
    assert!(
        line.contains(":rotate NAME [--new-cn NEWCN]  "),
        "usage runs into its help: {line}"
    );
}

#[test]
fn enter_opens_details_of_the_selected_row() {
    let mut s = state();
    key(&mut s, KeyCode::Char('7'));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Enter);
    let Some(Overlay::Details { title, lines, .. }) = &s.overlay else {
        panic!("no details")
    };
    let second_newest = rows::log_event(&s, 1).unwrap().to_event();
    assert_eq!(title, &format!("event {}", second_newest.ray_id));
    assert!(lines.iter().any(|l| l.contains("\"connection_method\"")));
    insta::assert_snapshot!("overlay_event_details", draw(&s, 160, 45));
    key(&mut s, KeyCode::Esc);

    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Enter);
    let Some(Overlay::Details { title, lines, .. }) = &s.overlay else {
        panic!("no details")
    };
    assert_eq!(
        title, "token backup-cron-prod",
        "expiry order puts the expired token first"
    );
    assert!(lines.iter().any(|l| l.contains("rotation due")));
}

#[test]
fn moving_selection_clamps_and_g_goes_to_the_ends() {
    let mut s = state();
    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Char('k'));
    assert_eq!(s.selected[1], 0);
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)),
    );
    assert_eq!(s.selected[1], tokens().len() - 1);
    key(&mut s, KeyCode::Down);
    assert_eq!(s.selected[1], tokens().len() - 1);
    key(&mut s, KeyCode::Char('g'));
    assert_eq!(s.selected[1], 0);
    let scroll = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 10,
        row: 10,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut s, Msg::Mouse(scroll));
    assert_eq!(s.selected[1], 1);
}

#[test]
fn sort_cycles_and_changes_the_order() {
    let mut s = state();
    key(&mut s, KeyCode::Char('2'));
    assert_eq!(rows::tokens(&s)[0].name, "backup-cron-prod");
    key(&mut s, KeyCode::Char('s'));
    assert_eq!(s.sort_label(ViewId::Tokens), "name");
    assert_eq!(rows::tokens(&s)[0].name, "backup-cron-prod");
    assert_eq!(rows::tokens(&s)[1].name, "ci-deploy-prod");
    key(&mut s, KeyCode::Char('s'));
    // Live traffic counts as "seen": the newest synthetic event is from legacy-sync-prod.
    assert_eq!(
        rows::tokens(&s)[0].name,
        "legacy-sync-prod",
        "most recently seen first"
    );
    key(&mut s, KeyCode::Char('s'));
    assert_eq!(s.sort_label(ViewId::Tokens), "expiry", "wraps");
}

#[test]
fn alerts_are_newest_first_and_come_only_from_the_detectors() {
    let s = state();
    let list = rows::alerts(&s);
    assert!(list[0].last_seen >= list[list.len() - 1].last_seen);
    let ids: Vec<&str> = list.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "unexpected_country:ci-deploy-prod",
            "credential_expiring:backup-cron-prod"
        ],
        "no console-derived rows beside the detectors' alerts"
    );
}

#[test]
fn q_and_ctrl_c_quit() {
    let mut s = state();
    key(&mut s, KeyCode::Char('q'));
    assert!(s.should_quit);
    let mut s = state();
    update(
        &mut s,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(s.should_quit);
}

#[test]
fn feed_problems_show_in_the_header() {
    let mut s = state();
    update(&mut s, Msg::Dropped(12));
    update(
        &mut s,
        Msg::CorruptLine {
            line: 7,
            error: "not valid JSON (column 1)".into(),
        },
    );
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("12 dropped") && text.contains("1 corrupt lines"),
        "{text}"
    );
    assert!(text.contains("READ-ONLY"));
}

/// The body of the screen (below the header line), where the views draw.
fn body_text(s: &AppState) -> String {
    draw(s, 160, 45)
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n")
}

fn newer_events(n: u64) -> Vec<Arc<AccessEvent>> {
    (0..n)
        .map(|i| {
            let mut e = bench::synthetic_event(5_000 + i, now(), 10);
            e.ray_id = format!("after-freeze-{i}");
            Arc::new(e)
        })
        .collect()
}

#[test]
fn freeze_keeps_the_views_still_counts_new_events_and_unfreeze_jumps_to_live() {
    let mut s = state();
    for view in ['1', '7', '4'] {
        key(&mut s, KeyCode::Char(view));
        let before = body_text(&s);
        key(&mut s, KeyCode::Char('f'));
        assert!(s.frozen.is_some());
        bench::ingest(&mut s, &newer_events(25));
        assert_eq!(s.new_since_frozen(), 25);
        let text = draw(&s, 160, 45);
        assert!(text.contains("frozen · 25 new"), "header says so:\n{text}");
        // The footer line carries the freeze notice; the rest of the view is unchanged.
        let body = body_text(&s);
        let (b, a): (Vec<_>, Vec<_>) = (before.lines().collect(), body.lines().collect());
        assert_eq!(
            b[..b.len() - 1],
            a[..a.len() - 1],
            "view {view} moved while frozen"
        );
        if view == '7' {
            insta::assert_snapshot!("view_log_frozen", text);
        }
        key(&mut s, KeyCode::Char('f'));
        assert!(s.frozen.is_none());
        assert!(!draw(&s, 160, 45).contains("frozen"));
    }
    // Unfrozen, the Log view is at the newest event again.
    key(&mut s, KeyCode::Char('7'));
    assert_eq!(s.selected[ViewId::Log.index()], 0);
    assert_eq!(
        rows::log_event(&s, 0).unwrap().to_event().ray_id,
        "after-freeze-24"
    );
}

#[test]
fn freeze_command_and_filter_while_frozen() {
    let mut s = state();
    key(&mut s, KeyCode::Char(':'));
    typed(&mut s, "freeze");
    key(&mut s, KeyCode::Enter);
    assert!(s.frozen.is_some(), ":freeze does what f does");
    bench::ingest(&mut s, &newer_events(8));
    // A filter set while frozen applies to what is shown, not to the events that came since.
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "after-freeze");
    key(&mut s, KeyCode::Enter);
    assert_eq!(rows::log_len(&s), 0);
    key(&mut s, KeyCode::Char('f'));
    assert_eq!(rows::log_len(&s), 8, "live again: the new events match");
}

/// Decode standard padded base64 (the test's own, so the console's encoder is checked against
/// something it did not write).
fn unbase64(text: &str) -> Vec<u8> {
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.chars().filter(|c| *c != '=') {
        bits = (bits << 6) | alphabet.find(c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

fn copied(s: &mut AppState) -> Vec<String> {
    std::mem::take(&mut s.effects)
        .into_iter()
        .filter_map(|e| match e {
            botgate::console::Effect::Copy(text) => Some(text),
            _ => None,
        })
        .collect()
}

#[test]
fn y_on_a_log_row_sends_osc52_with_exactly_its_ray_id() {
    let mut s = state();
    key(&mut s, KeyCode::Char('7'));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Char('j'));
    let ray = rows::log_event(&s, 2).unwrap().to_event().ray_id.clone();
    key(&mut s, KeyCode::Char('y'));
    let texts = copied(&mut s);
    assert_eq!(texts, std::slice::from_ref(&ray));
    let seq = botgate::console::clipboard::osc52(&texts[0]);
    let payload = seq
        .strip_prefix("\x1b]52;c;")
        .and_then(|p| p.strip_suffix('\x07'))
        .unwrap();
    assert_eq!(unbase64(payload), ray.as_bytes());
    assert!(
        draw(&s, 160, 45).contains(&format!("copied ray id {ray} (OSC 52)")),
        "the footer confirms"
    );
}

#[test]
fn y_copies_each_views_key_field() {
    let mut s = state();
    for (view, want) in [
        ('2', rows::tokens(&s)[0].client_id.clone()),
        ('3', rows::certs(&s)[0].fingerprint_sha256.clone()),
        ('4', rows::alerts(&s)[0].id.clone()),
        ('1', rows::identities(&s)[0].name.clone()),
    ] {
        key(&mut s, KeyCode::Char(view));
        key(&mut s, KeyCode::Char('y'));
        assert_eq!(copied(&mut s), [want], "view {view}");
    }
}

#[test]
fn shift_y_menu_offers_json_curl_and_explain_without_the_secret() {
    let mut s = state();
    key(&mut s, KeyCode::Char('7'));
    let e = rows::log_event(&s, 0).unwrap().to_event();
    key(&mut s, KeyCode::Char('Y'));
    let menu = s.menu.clone().expect("the menu opens");
    let whats: Vec<&str> = menu.items.iter().map(|i| i.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "row as JSON",
            "curl that reproduces the request",
            "botgate policy explain line"
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&menu.items[0].text).unwrap();
    assert_eq!(json["ray_id"], e.ray_id.as_str());
    let curl = &menu.items[1].text;
    assert!(
        curl.contains("$CF_ACCESS_CLIENT_SECRET") || curl.contains("--cert"),
        "{curl}"
    );
    assert!(!curl.contains("bgs_"), "never a secret: {curl}");
    assert!(
        curl.contains(e.path.as_deref().unwrap()),
        "the request's path: {curl}"
    );
    let explain = &menu.items[2].text;
    assert!(
        explain.starts_with(&format!(
            "botgate policy explain --app {}",
            e.host.as_deref().unwrap()
        )),
        "{explain}"
    );
    insta::assert_snapshot!("copy_menu", draw(&s, 160, 45));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Enter);
    assert!(s.menu.is_none());
    assert_eq!(copied(&mut s), std::slice::from_ref(curl));
    // Esc closes without copying.
    key(&mut s, KeyCode::Char('Y'));
    key(&mut s, KeyCode::Esc);
    assert!(s.menu.is_none() && copied(&mut s).is_empty());
}

fn exported(s: &mut AppState) -> (std::path::PathBuf, String) {
    let mut files: Vec<_> = std::mem::take(&mut s.effects)
        .into_iter()
        .filter_map(|e| match e {
            botgate::console::Effect::WriteFile { path, contents, .. } => Some((path, contents)),
            _ => None,
        })
        .collect();
    assert_eq!(files.len(), 1);
    files.remove(0)
}

#[test]
fn export_writes_what_the_view_shows_as_csv_or_json() {
    let mut s = state();
    key(&mut s, KeyCode::Char('7'));
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "deny country:RU");
    key(&mut s, KeyCode::Enter);
    key(&mut s, KeyCode::Char(':'));
    typed(&mut s, "export denied.csv");
    key(&mut s, KeyCode::Enter);
    let (path, csv) = exported(&mut s);
    assert_eq!(path, std::path::Path::new("denied.csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("event,created_at,ray_id,app_name,allowed,decision"));
    assert_eq!(lines.len() - 1, rows::log_len(&s), "one line per row shown");
    for (i, l) in lines[1..].iter().enumerate() {
        let e = rows::log_event(&s, i).unwrap().to_event();
        assert!(l.contains(&e.ray_id) && l.contains(",RU,"), "{l}");
    }
    insta::assert_snapshot!("export_log_denied_ru_csv", csv);

    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Char('s'));
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char(':'));
    typed(&mut s, "export tokens.JSON");
    key(&mut s, KeyCode::Enter);
    let (_, json) = exported(&mut s);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let shown: Vec<&str> = rows::tokens(&s).iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, shown, "sorted by name, as the view");
    insta::assert_snapshot!("export_tokens_by_name_json", json);

    key(&mut s, KeyCode::Char(':'));
    typed(&mut s, "export tokens.txt");
    key(&mut s, KeyCode::Enter);
    assert!(s.effects.is_empty());
    assert!(draw(&s, 160, 45).contains("writes .csv or .json, not .txt"));
}

#[test]
fn filter_history_walks_with_up_and_down() {
    let mut s = state();
    for f in ["deny", "country:RU", "app:api"] {
        key(&mut s, KeyCode::Char('/'));
        key(&mut s, KeyCode::Esc);
        key(&mut s, KeyCode::Char('/'));
        typed(&mut s, f);
        key(&mut s, KeyCode::Enter);
    }
    assert_eq!(s.filter_history, ["deny", "country:RU", "app:api"]);
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "ci");
    key(&mut s, KeyCode::Up);
    assert_eq!(s.filter_input.as_deref(), Some("app:api"));
    key(&mut s, KeyCode::Up);
    key(&mut s, KeyCode::Up);
    assert_eq!(s.filter_input.as_deref(), Some("deny"));
    assert_eq!(s.filter.text(), "deny", "the filter follows, as when typed");
    insta::assert_snapshot!("filter_history_up", draw(&s, 160, 45));
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Down);
    assert_eq!(s.filter_input.as_deref(), Some("ci"), "back to the draft");
}

#[test]
fn enter_on_a_token_drills_down_into_its_traffic_alerts_and_last_events() {
    let mut s = state();
    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Enter);
    let Some(Overlay::Details { title, lines, .. }) = &s.overlay else {
        panic!("no details")
    };
    assert_eq!(title, "token backup-cron-prod");
    let text = lines.join("\n");
    let ring: Vec<_> = (0..rows::log_len(&s))
        .filter_map(|i| rows::log_event(&s, i).map(|e| e.to_event()))
        .filter(|e| e.identity() == Some("backup-cron-prod") && e.event == EventKind::Access)
        .collect();
    let allowed = ring.iter().filter(|e| e.allowed).count();
    assert!(
        text.contains(&format!(
            "in the ring  {allowed} allowed, {} denied",
            ring.len() - allowed
        )),
        "{text}"
    );
    assert!(
        text.contains("open alerts  token backup-cron-prod expires in 5d"),
        "{text}"
    );
    assert!(text.contains(&ring[0].created_at.format("%H:%M:%S%.3f").to_string()));
    insta::assert_snapshot!("overlay_token_drill_down", draw(&s, 160, 45));
}

/// Events from several gates (`console --attach A --attach B`): the Log view gains a node
/// column, and `node:NAME` keeps one gate's events.
#[test]
fn log_view_names_the_gate_when_events_come_from_several() {
    let mut s = state();
    key(&mut s, KeyCode::Char('7'));
    assert!(
        !draw(&s, 160, 45).contains(" node "),
        "one gate: no node column"
    );
    let events: Vec<_> = (0..6)
        .map(|i| {
            let mut e = bench::synthetic_event(2_000_000 + i, now(), 1_000_000);
            e.node = Some(if i % 2 == 0 { "gate-a" } else { "gate-b" }.into());
            Arc::new(e)
        })
        .collect();
    bench::ingest(&mut s, &events);
    let screen = draw(&s, 160, 45);
    assert!(screen.contains("node"), "{screen}");
    assert!(
        screen.contains("gate-a") && screen.contains("gate-b"),
        "{screen}"
    );
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "node:gate-b");
    key(&mut s, KeyCode::Enter);
    let screen = draw(&s, 160, 45);
    assert!(
        screen.contains("gate-b") && !screen.contains("gate-a"),
        "{screen}"
    );
}

#[test]
fn a_disabled_token_shows_as_disabled_not_ok() {
    let mut s = state();
    let mut list = tokens();
    let mut t = token("ci-paused", 3, Duration::days(80), false, None, &[]);
    t.disabled = true;
    list.push(t);
    update(
        &mut s,
        Msg::Inventory {
            tokens: list,
            certs: certs(),
            store_error: None,
        },
    );
    key(&mut s, KeyCode::Char('2'));
    let b = bench::render(&s, 160, 45);
    find_on_row(&b, "ci-paused", " disabled ");
    assert!(
        buffer_text(&b).contains("1 disabled"),
        "{}",
        buffer_text(&b)
    );
}

#[test]
fn an_unreachable_store_is_said_in_the_header_until_it_answers_again() {
    let mut s = state();
    let error = "STORE UNREACHABLE, inventory as last read: PostgreSQL store gate@10.0.0.5:5432/botgate unreachable: connection refused";
    update(
        &mut s,
        Msg::Inventory {
            tokens: tokens(),
            certs: certs(),
            store_error: Some(error.into()),
        },
    );
    let b = bench::render(&s, 220, 45);
    let header = buffer_text(&b)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(header.contains("STORE UNREACHABLE"), "{header}");
    assert!(header.contains("gate@10.0.0.5:5432/botgate"), "{header}");
    // The rows are still the last good read.
    find_on_row(&b, "ci-deploy-prod", "ci-deploy-prod");
    update(
        &mut s,
        Msg::Inventory {
            tokens: tokens(),
            certs: certs(),
            store_error: None,
        },
    );
    let b = bench::render(&s, 220, 45);
    assert!(!buffer_text(&b).contains("STORE UNREACHABLE"));
}

/// Rate-limited requests are their own series in Traffic, and the Tokens view shows each
/// token's bounds with what they did (`4 limited`, shadow marks included, in the warn colour).
#[test]
fn rate_limited_requests_are_a_traffic_series_and_show_on_the_token() {
    let mut s = state();
    let mut events: Vec<Arc<AccessEvent>> = Vec::new();
    // ci-deploy-prod over its rate limit 20 s ago: four 429s, and one shadow-mode mark.
    events.extend((0..5).map(|i| {
        let mut e = bench::synthetic_event(i, now() - Duration::seconds(20), 1_000);
        e.service_token_name = Some("ci-deploy-prod".into());
        e.cert_common_name = None;
        e.connection_method = botgate::audit::ConnectionMethod::ServiceToken;
        if i < 4 {
            e.allowed = false;
            e.decision = "deny".into();
            e.status = Some(429);
            e.deny_reason = Some("rate_limited".into());
        } else {
            e.allowed = true;
            e.decision = "allow".into();
            e.status = Some(200);
            e.deny_reason = None;
            e.details = Some(serde_json::json!({ "rate_limited_shadow": true }));
        }
        Arc::new(e)
    }));
    bench::ingest(&mut s, &events);
    key(&mut s, KeyCode::Char('1'));
    let traffic = draw(&s, 160, 45);
    assert!(
        traffic.contains("allowed vs denied vs rate limited"),
        "{traffic}"
    );
    assert!(traffic.contains("rate limited"), "{traffic}");
    key(&mut s, KeyCode::Char('2'));
    let tokens = draw(&s, 220, 45);
    let row = tokens
        .lines()
        .find(|l| l.contains("ci-deploy-prod "))
        .unwrap_or_else(|| panic!("{tokens}"));
    assert!(row.contains("10.1.0.0/16 · 600/min 5 limited"), "{row}");
}

/// Thirty requests of an identity seen only two hours ago.
fn two_hours_ago() -> Vec<Arc<AccessEvent>> {
    (0..30)
        .map(|i| {
            let mut e = bench::synthetic_event(i, now() - Duration::hours(2), 1);
            e.service_token_name = Some("nightly-export".into());
            e.cert_common_name = None;
            e.connection_method = botgate::audit::ConnectionMethod::ServiceToken;
            Arc::new(e)
        })
        .collect()
}

fn title_line(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .to_string()
}

#[test]
fn time_window_brackets_select_the_chart_window_and_the_tables_follow() {
    let mut s = AppState::new(
        Theme::default(),
        HeaderInfo::default(),
        Limits::default(),
        now() - Duration::hours(3),
    );
    let mut events = two_hours_ago();
    events.extend(bench::synthetic_events(
        600,
        now() - Duration::seconds(120),
        5,
    ));
    bench::ingest(&mut s, &events);
    update(&mut s, Msg::Tick(now()));
    update(&mut s, Msg::Resize(160, 45));
    let live = draw(&s, 160, 45);
    assert!(title_line(&live, "requests/s").contains("last 81s"));
    assert!(title_line(&live, "identities").contains("identities · 9 "));
    // `]` steps from what the width gives (81 s) to 5 min; the tables say which window.
    key(&mut s, KeyCode::Char(']'));
    let five = draw(&s, 160, 45);
    assert!(
        title_line(&five, "requests/s").contains("last 5m · 4s/column"),
        "{five}"
    );
    assert!(title_line(&five, "identities").contains("identities · 8 · last 5m"));
    assert!(!five.contains("nightly-export"));
    key(&mut s, KeyCode::Char(']'));
    key(&mut s, KeyCode::Char(']'));
    assert!(title_line(&draw(&s, 160, 45), "requests/s").contains("last 1h · 1m/column"));
    key(&mut s, KeyCode::Char(']'));
    let six = draw(&s, 160, 45);
    assert!(
        title_line(&six, "requests/s").contains("last 6h · 5m/column"),
        "{six}"
    );
    assert!(six.contains("nightly-export"), "two hours ago is in 6 h");
    insta::assert_snapshot!("traffic_window_6h", six);
    key(&mut s, KeyCode::Char(']'));
    key(&mut s, KeyCode::Char(']'));
    let text = draw(&s, 160, 45);
    assert!(title_line(&text, "requests/s").contains("last 24h"));
    assert!(
        text.contains("no wider window"),
        "the footer says so:\n{text}"
    );
    // The Log view and the tail follow the window too: the minute ending at 12:00:00 starts at
    // 11:59:01, so it holds 59 seconds of 5 events.
    for _ in 0..5 {
        key(&mut s, KeyCode::Char('['));
    }
    assert_eq!(s.time.window.map(|w| w.label()), Some("1m"));
    assert_eq!(rows::log_len(&s), 295);
    key(&mut s, KeyCode::Char('7'));
    assert_eq!(rows::row_count(&s, ViewId::Log), 295);
}

#[test]
fn the_chart_cursor_scrubs_an_interval_the_tables_show_and_esc_returns_to_live() {
    let mut s = state();
    key(&mut s, KeyCode::Char('['));
    assert_eq!(s.time.window.map(|w| w.label()), Some("1m"));
    typed(&mut s, "/deny");
    key(&mut s, KeyCode::Enter);
    // The first `,` puts the cursor on the newest second; 39 more reach the runaway script's
    // second (11:59:21), where one identity sent 60 requests.
    for _ in 0..40 {
        key(&mut s, KeyCode::Char(','));
    }
    assert!(s.time.cursor.is_some());
    key(&mut s, KeyCode::Esc);
    assert!(s.time.cursor.is_none(), "Esc leaves the cursor first");
    assert_eq!(s.filter.text(), "deny", "and keeps the filter");
    key(&mut s, KeyCode::Esc);
    assert!(s.filter.is_empty());
    for _ in 0..40 {
        key(&mut s, KeyCode::Char(','));
    }
    let text = draw(&s, 160, 45);
    assert!(
        title_line(&text, "requests/s").contains("cursor 11:59:21 to 11:59:22"),
        "{text}"
    );
    assert!(title_line(&text, "identities").contains("identities · 6 · 11:59:21 to 11:59:22"));
    assert_eq!(
        rows::log_len(&s),
        65,
        "the runaway's 60 and the second's usual 5"
    );
    insta::assert_snapshot!("traffic_cursor", text);
    // The cursor's column is drawn in the selection style: the chart's last 60 columns are
    // the minute, the cursor's second is the 21st of them.
    let buf = bench::render(&s, 160, 45);
    let (_, y) = find_on_row(&buf, "│allowed", "allowed");
    let chart_right = 97; // the chart block's right border
    let x = chart_right - 60 + 21;
    assert_eq!(buf[(x, y)].bg, Theme::default().selection().bg.unwrap());
    assert_ne!(buf[(x + 1, y)].bg, buf[(x, y)].bg);
    key(&mut s, KeyCode::Char('.'));
    assert!(title_line(&draw(&s, 160, 45), "requests/s").contains("cursor 11:59:22 to 11:59:23"));
    key(&mut s, KeyCode::Esc);
    let live = draw(&s, 160, 45);
    assert!(!live.contains("cursor"), "{live}");
    assert!(title_line(&live, "identities").contains("last 1m"));
}

#[test]
fn the_header_says_how_far_back_the_history_goes_and_shows_loading_progress() {
    let header = HeaderInfo {
        source: "tail /var/lib/botgate/audit.jsonl".into(),
        history: Some("last 4 MiB".into()),
        ..HeaderInfo::default()
    };
    let mut s = AppState::new(Theme::default(), header, Limits::default(), now());
    bench::ingest(&mut s, &two_hours_ago());
    update(&mut s, Msg::Tick(now()));
    let mib = 1024 * 1024;
    update(
        &mut s,
        Msg::Loading {
            read: 50 * mib,
            total: 200 * mib,
        },
    );
    // (Wide enough for the whole header line.)
    let top = draw(&s, 200, 45).lines().next().unwrap().to_string();
    assert!(
        top.contains("tail /var/lib/botgate/audit.jsonl · last 4 MiB, from 10:00:00 (2h 0m ago)"),
        "{top}"
    );
    assert!(top.contains("loading history 25% (50 of 200 MiB)"), "{top}");
    update(
        &mut s,
        Msg::Loading {
            read: 200 * mib,
            total: 200 * mib,
        },
    );
    assert!(!draw(&s, 160, 45).contains("loading history"));
}

/// The config files `update` asked the runner to write, written as the runner does.
fn write_configs(s: &mut AppState) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for effect in std::mem::take(&mut s.effects) {
        if let Effect::WriteConfig { path, contents, .. } = effect {
            botgate::atomic_file::write(&path, contents.as_bytes()).unwrap();
            out.push((path, contents));
        }
    }
    out
}

fn command(s: &mut AppState, line: &str) {
    key(s, KeyCode::Char(':'));
    typed(s, line);
    key(s, KeyCode::Enter);
}

#[test]
fn named_filters_are_saved_in_the_config_dir_listed_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("botgate");
    let mut s = state();
    s.config_dir = Some(config.clone());
    command(&mut s, "save denied-ru");
    assert_eq!(
        s.message.clone().unwrap().unwrap_err(),
        ":save stores the applied filter, and there is none: type one after / first"
    );
    typed(&mut s, "/deny country:RU");
    key(&mut s, KeyCode::Enter);
    command(&mut s, "save denied-ru");
    let written = write_configs(&mut s);
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, config.join("filters.toml"));
    // (`/` edits the applied filter: Esc clears it first.)
    key(&mut s, KeyCode::Esc);
    typed(&mut s, "/allow");
    key(&mut s, KeyCode::Enter);
    command(&mut s, "save allowed");
    write_configs(&mut s);
    let on_disk = botgate::console::settings::NamedFilters::load(&config).unwrap();
    assert_eq!(
        on_disk, s.saved_filters,
        "the file holds what the console holds"
    );
    assert_eq!(on_disk.get("denied-ru"), Some("deny country:RU"));
    command(&mut s, "save two words");
    assert!(
        s.message
            .clone()
            .unwrap()
            .unwrap_err()
            .contains("use letters, digits"),
        "{:?}",
        s.message
    );
    key(&mut s, KeyCode::Esc);
    assert!(s.filter.is_empty());
    // `:filters` lists them by name; choosing one applies it.
    command(&mut s, "filters");
    let menu = s.menu.clone().expect("the menu opens");
    let names: Vec<&str> = menu.items.iter().map(|i| i.what.as_str()).collect();
    assert_eq!(names, ["allowed", "denied-ru"]);
    insta::assert_snapshot!("filters_menu", draw(&s, 160, 45));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Enter);
    assert!(s.menu.is_none());
    assert_eq!(s.filter.text(), "deny country:RU");
    assert_eq!(
        s.filter_history.last().map(String::as_str),
        Some("deny country:RU")
    );
    command(&mut s, "filters allowed");
    assert_eq!(s.filter.text(), "allow");
    command(&mut s, "filters nope");
    assert_eq!(
        s.message.clone().unwrap().unwrap_err(),
        "no saved filter \"nope\"; saved: allowed denied-ru"
    );
    // A new console reads them back from the dir.
    let mut opts = botgate::console::ConsoleOptions::new(Theme::default());
    opts.saved_filters = botgate::console::settings::NamedFilters::load(&config).unwrap();
    let fresh = opts.initial_state();
    assert_eq!(fresh.saved_filters.get("allowed"), Some("allow"));
}

#[test]
fn the_expiry_timeline_marks_the_critical_week_in_the_critical_colour() {
    let mut s = state();
    key(&mut s, KeyCode::Char('2'));
    let buf = bench::render(&s, 160, 45);
    let text = buffer_text(&buf);
    assert!(
        text.contains("expiring per week · next 90 days · 1 critical (!) · 1 expired already"),
        "{text}"
    );
    // monitoring-probe-prod expires in 5 days: this week's bar, marked `!`.
    let (x, y) = find_on_row(&buf, "1!", "1!");
    let critical = Theme::default()
        .status(botgate::console::CredentialStatus::Critical)
        .fg;
    assert_eq!(Some(buf[(x, y - 1)].fg), critical);
    // ci-deploy-staging (20 days) is in the third week, in the warn colour.
    let (x, y) = find_on_row(&buf, "█████1█████", "█1█");
    let x = x + 1;
    let warn = Theme::default()
        .status(botgate::console::CredentialStatus::Warn)
        .fg;
    assert_eq!(Some(buf[(x, y - 1)].fg), warn);
    // Filtered, the timeline counts what the table shows.
    typed(&mut s, "/staging");
    key(&mut s, KeyCode::Enter);
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("expiring per week · next 90 days ─"),
        "{text}"
    );
}

#[test]
fn traffic_shows_each_apps_latency_p50_and_p99() {
    let mut s = state();
    // A slow app: 100 requests taking 1 … 100 ms over the last 20 s.
    let slow: Vec<Arc<AccessEvent>> = (0..100u64)
        .map(|i| {
            let mut e = bench::synthetic_event(i, now() - Duration::seconds(20), 5);
            e.app_name = Some("slow.example.com".into());
            e.latency_ms = Some((i + 1) as f64);
            Arc::new(e)
        })
        .collect();
    bench::ingest(&mut s, &slow);
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("latency by app · p50 / p99 per minute · last 60m"),
        "{text}"
    );
    let row = title_line(&text, "slow.example.com  ");
    // Read from log-scale bins: within ±9 % of the true 50 ms and 99 ms.
    assert!(
        row.contains("p50 47 ms") && row.contains("p99 94 ms"),
        "{row}"
    );
    // The apps without a slow request keep their own figures.
    assert!(title_line(&text, "api.example.com  ").contains("p99 1.5 ms"));
}

#[test]
fn a_rebound_key_shows_in_the_footer_and_help_and_does_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keys.toml"),
        "[keys]\nfreeze = \"p\"\ncopy = [\"y\", \"c\"]\n",
    )
    .unwrap();
    let mut s = state();
    s.keymap = botgate::console::rebind::load(dir.path()).unwrap();
    let text = draw(&s, 160, 45);
    let footer = text.lines().last().unwrap();
    assert!(
        footer.contains("p freeze") && footer.contains("y/c copy"),
        "{footer}"
    );
    assert!(!footer.contains("f freeze"), "{footer}");
    key(&mut s, KeyCode::Char('?'));
    let help = draw(&s, 160, 45);
    insta::assert_snapshot!("overlay_help_rebound", help);
    // The key column of a line: what follows the overlay's border, up to the help text.
    let keys_of = |help_text: &str| {
        let line = title_line(&help, help_text);
        let (before, _) = line.split_once(help_text).unwrap();
        before.rsplit('│').next().unwrap().trim().to_string()
    };
    assert_eq!(keys_of("freeze the views (new events"), "p");
    assert_eq!(keys_of("copy the selected row's key field"), "y c");
    assert!(
        help.contains("freeze the views, or unfreeze and jump to live (p)"),
        "the command's help names the key as rebound:\n{help}"
    );
    key(&mut s, KeyCode::Esc);
    key(&mut s, KeyCode::Char('f'));
    assert!(s.frozen.is_none(), "f is free now");
    key(&mut s, KeyCode::Char('p'));
    assert!(s.frozen.is_some(), "p freezes");
}

#[test]
fn columns_chooses_and_orders_a_views_columns_and_keeps_them_in_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("botgate");
    let mut s = state();
    s.config_dir = Some(config.clone());
    command(&mut s, "columns");
    assert_eq!(
        s.message.clone().unwrap().unwrap(),
        "Traffic columns: identity via req/min deny-% total last-seen countries apps; :columns NAME… to choose, :columns reset"
    );
    command(&mut s, "columns identity bogus");
    assert!(
        s.message
            .clone()
            .unwrap()
            .unwrap_err()
            .starts_with("Traffic has no column \"bogus\"; its columns: identity via"),
        "{:?}",
        s.message
    );
    command(&mut s, "columns apps identity total");
    let written = write_configs(&mut s);
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, config.join("columns.toml"));
    let text = draw(&s, 160, 45);
    let header = title_line(&text, "│  apps ");
    assert!(
        header
            .trim_end_matches('│')
            .split_whitespace()
            .collect::<Vec<_>>()[1..]
            == ["apps", "identity", "total"],
        "{header}"
    );
    insta::assert_snapshot!("traffic_columns_chosen", text);
    command(&mut s, "columns");
    assert!(
        s.message
            .clone()
            .unwrap()
            .unwrap()
            .contains("apps identity total (hidden: via req/min deny-% last-seen countries)")
    );
    // Another console reads the choice back; other views keep theirs.
    let back = botgate::console::settings::ColumnChoices::load(&config).unwrap();
    assert_eq!(back, s.columns);
    assert_eq!(back.get(ViewId::Tokens), None);
    command(&mut s, "columns reset");
    write_configs(&mut s);
    assert!(title_line(&draw(&s, 160, 45), "│  identity").contains("via"));
    assert_eq!(
        botgate::console::settings::ColumnChoices::load(&config)
            .unwrap()
            .get(ViewId::Traffic),
        None
    );
}

#[test]
fn a_live_windows_identities_take_new_events_at_once_and_drop_old_ones_each_step() {
    let mut s = state();
    key(&mut s, KeyCode::Char('['));
    assert_eq!(s.time.window.map(|w| w.label()), Some("1m"));
    let before = rows::identities(&s).len();
    let mut e = bench::synthetic_event(0, now(), 10);
    e.service_token_name = Some("newcomer".into());
    e.cert_common_name = None;
    bench::ingest(&mut s, &[Arc::new(e)]);
    assert_eq!(rows::identities(&s).len(), before + 1, "no tick needed");
    // At 12:00:59 the minute starts at 12:00:00: only newcomer's event (at 12:00:00) is in
    // it; at 12:02:00, nothing is.
    update(&mut s, Msg::Tick(now() + Duration::seconds(59)));
    assert_eq!(
        rows::identities(&s)
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["newcomer"]
    );
    update(&mut s, Msg::Tick(now() + Duration::seconds(120)));
    assert!(rows::identities(&s).is_empty());
}

fn issuer_row(
    name: &str,
    fetched_secs_ago: Option<i64>,
    error: Option<&str>,
    counts: Option<(u64, u64)>,
) -> botgate::console::model::IssuerRow {
    use botgate::oidc::view::{IssuerView, KeyView};
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let kids: Vec<String> = match fetched_secs_ago {
        Some(_) => vec![format!("{name}-2026-11"), format!("{name}-2026-12")],
        None => Vec::new(),
    };
    botgate::console::model::IssuerRow {
        view: IssuerView {
            name: name.into(),
            issuer: format!("https://{name}.example.test"),
            source: format!("discovery via https://{name}.example.test"),
            audiences: vec!["https://api.example.com".into()],
            algorithms: vec!["RS256", "ES256"],
            from: fetched_secs_ago.map(|_| format!("https://{name}.example.test/jwks")),
            fetched_at: fetched_secs_ago.map(|a| iso(now() - Duration::seconds(a))),
            age_seconds: fetched_secs_ago,
            expires_at: fetched_secs_ago
                .map(|a| iso(now() - Duration::seconds(a) + Duration::hours(1))),
            stale: fetched_secs_ago.is_none_or(|a| a > 86_400),
            max_key_age_seconds: 86_400,
            keys: kids
                .iter()
                .map(|k| KeyView {
                    kid: Some(k.clone()),
                    alg: Some("RS256"),
                    key: "RSA 2048-bit".into(),
                })
                .collect(),
            kids,
            last_attempt: Some(iso(now() - Duration::seconds(30))),
            last_error: error.map(str::to_string),
            failures: u64::from(error.is_some()) * 3,
        },
        counts: counts.map(
            |(verified, refused)| botgate::console::model::IssuerCounts {
                verified,
                refused,
                kid_misses: 1,
            },
        ),
    }
}

/// A CI job's request signed in with the `github` issuer's token.
fn oidc_event(i: u64, sub: &str, allowed: bool) -> Arc<AccessEvent> {
    let mut e = bench::synthetic_event(i, now(), 10);
    e.created_at = now() - Duration::seconds(90) + Duration::seconds(i as i64);
    e.service_token_name = None;
    e.cert_common_name = None;
    e.connection_method = botgate::audit::ConnectionMethod::Oidc;
    e.oidc_identity = Some(format!("oidc:github/{sub}"));
    e.allowed = allowed;
    e.decision = if allowed { "allow" } else { "deny" }.into();
    e.deny_reason = (!allowed).then(|| "oidc_expired".into());
    Arc::new(e)
}

#[test]
fn issuers_view_shows_key_sets_refresh_failures_identities_and_key_rotations() {
    let mut s = state();
    update(
        &mut s,
        Msg::Issuers(vec![
            issuer_row("github", Some(600), None, Some((41, 2))),
            issuer_row(
                "gitlab",
                Some(90_000),
                Some("https://gitlab.example.test/jwks: connection refused"),
                Some((0, 0)),
            ),
            issuer_row(
                "buildkite",
                None,
                Some("HTTP 404 from the discovery document"),
                None,
            ),
        ]),
    );
    for i in 0..12 {
        let sub = if i % 3 == 0 {
            "repo:example/api:ref:refs/heads/main"
        } else {
            "repo:example/web:environment:prod"
        };
        update(&mut s, Msg::Event(oidc_event(i, sub, i != 5)));
    }
    let change = AccessEvent::admin(
        now() - Duration::minutes(3),
        botgate::oidc::KEYS_CHANGED,
        &format!("{}github", botgate::oidc::ADMIN_TARGET),
        serde_json::json!({
            "issuer": "https://github.example.test",
            "added": ["github-2026-12"],
            "removed": ["github-2026-10"],
            "kids": ["github-2026-11", "github-2026-12"],
        }),
    );
    update(&mut s, Msg::Event(Arc::new(change)));
    assert_eq!(s.key_changes.len(), 1);
    assert_eq!(s.key_changes[0].issuer, "github");
    assert_eq!(s.key_changes[0].removed, ["github-2026-10"]);

    key(&mut s, KeyCode::Char('8'));
    assert_eq!(s.view, ViewId::Issuers);
    let text = draw(&s, 160, 45);
    assert!(
        text.contains("oidc:github/repo:example/api:ref:refs/heads/main"),
        "{text}"
    );
    assert!(text.contains("41 / 2"), "{text}");
    insta::assert_snapshot!("view_issuers_with_issuers_160x45", text);

    // The failing, stale one: its error and the stale key set in the details.
    key(&mut s, KeyCode::Char('j'));
    let text = draw(&s, 160, 45);
    assert!(text.contains("failed (3 in a row)"), "{text}");
    assert!(text.contains("(stale)"), "{text}");

    // `y` copies the issuer URL; `:iss` reaches the view too.
    key(&mut s, KeyCode::Char('y'));
    assert_eq!(
        s.effects.last(),
        Some(&Effect::Copy("https://gitlab.example.test".into()))
    );
    key(&mut s, KeyCode::Char('1'));
    key(&mut s, KeyCode::Char(':'));
    typed(&mut s, "iss");
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view, ViewId::Issuers);

    // The Rotations view follows the issuer's own key rotation below the list.
    key(&mut s, KeyCode::Char('6'));
    let text = draw(&s, 160, 45);
    assert!(text.contains("OIDC issuer key rotations"), "{text}");
    assert!(text.contains("removed github-2026-10"), "{text}");
    insta::assert_snapshot!("view_rotations_with_key_changes_160x45", text);
}
