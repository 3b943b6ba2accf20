//! Tests of the `:` command line: parsing, suggestions, completion, history, what each
//! command does to the state, read-only refusal, and a snapshot of the open prompt.

use super::*;

#[test]
fn parse_names_aliases_and_arguments() {
    let c = parse("tokens", false).unwrap();
    assert_eq!(c.spec.kind, Kind::View(ViewId::Tokens));
    assert_eq!(parse(" tk ", false).unwrap().spec.name, "tokens");
    assert_eq!(parse("LOG", false).unwrap().spec.name, "log");
    let f = parse("filter  deny country:RU ", false).unwrap();
    assert_eq!((f.spec.name, f.arg), ("filter", "deny country:RU"));
    assert_eq!(parse("q", false).unwrap().spec.name, "quit");
    assert_eq!(parse("theme", false).unwrap().arg, "", "lists the themes");
    assert_eq!(parse("", false), Err(CommandError::Empty));
    assert!(matches!(
        parse("rotate", false),
        Err(CommandError::MissingArg { name: "rotate", .. })
    ));
    assert!(matches!(
        parse("tokens now", false),
        Err(CommandError::UnexpectedArg { .. })
    ));
}

#[test]
fn unknown_command_names_it_and_suggests_close_ones() {
    let e = parse("tokns", false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown command :tokns; did you mean :tokens?"
    );
    let e = parse("rot8", false).unwrap_err().to_string();
    assert!(e.contains(":rot8") && e.contains(":rotations"), "{e}");
    let e = parse("xyzzy", false).unwrap_err().to_string();
    assert_eq!(e, "unknown command :xyzzy; :help lists the commands");
    // Read-only consoles never suggest a command that changes something.
    assert!(!close_matches("rotat", true).contains(&"rotate"));
    assert!(close_matches("rotat", false).contains(&"rotate"));
}

#[test]
fn every_name_and_alias_is_unique() {
    let mut all: Vec<&str> = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(edit_distance("tokns", "tokens"), 1);
    assert_eq!(edit_distance("", "log"), 3);
    assert_eq!(edit_distance("certs", "certs"), 0);
}

mod with_state {
    use super::super::*;
    use crate::console::actions::ConsoleAction;
    use crate::console::aggregate::Limits;
    use crate::console::app::{HeaderInfo, Msg, update};
    use crate::console::model::{CertRow, TokenRow};
    use crate::console::theme::Theme;
    use chrono::{DateTime, Duration, Utc};
    use crossterm::event::{KeyCode, KeyEvent};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn token(name: &str) -> TokenRow {
        TokenRow {
            name: name.into(),
            client_id: "0123456789abcdef0123456789abcdef.access".into(),
            created_at: now() - Duration::days(10),
            expires_at: now() + Duration::days(80),
            revoked: false,
            disabled: false,
            last_seen_at: None,
            policies: Vec::new(),
            rotation_due_at: now() + Duration::days(80),
            bounds: Default::default(),
        }
    }

    fn state(read_only: bool) -> AppState {
        let header = HeaderInfo {
            read_only,
            ..HeaderInfo::default()
        };
        let mut s = AppState::new(Theme::default(), header, Limits::default(), now());
        s.actions_available = !read_only;
        update(&mut s, Msg::Resize(100, 30));
        let cert = CertRow {
            common_name: "device-0001.factory.corp".into(),
            issuer: "demo CA".into(),
            serial: "01ab".into(),
            fingerprint_sha256: "ab".repeat(32),
            not_after: now() + Duration::days(20),
            key_type: "ecdsa-p256".into(),
            revoked: false,
            last_seen_at: None,
            source: "store".into(),
            rotation_due_at: now() + Duration::days(300),
            policies: Vec::new(),
        };
        update(
            &mut s,
            Msg::Inventory {
                tokens: vec![token("ci-deploy-prod"), token("ci-deploy-staging")],
                certs: vec![cert],
                store_error: None,
            },
        );
        s
    }

    fn keys(s: &mut AppState, text: &str) {
        for c in text.chars() {
            update(s, Msg::Key(KeyEvent::from(KeyCode::Char(c))));
        }
    }

    fn key(s: &mut AppState, code: KeyCode) {
        update(s, Msg::Key(KeyEvent::from(code)));
    }

    #[test]
    fn colon_opens_enter_runs_esc_cancels() {
        let mut s = state(false);
        keys(&mut s, ":");
        assert_eq!(s.context(), crate::console::keymap::Context::CommandInput);
        keys(&mut s, "tok");
        key(&mut s, KeyCode::Enter);
        assert_eq!((s.view, s.command.clone()), (ViewId::Tokens, None));
        keys(&mut s, ":log");
        key(&mut s, KeyCode::Esc);
        assert_eq!(
            (s.view, s.command.clone()),
            (ViewId::Tokens, None),
            "cancelled"
        );
        // `q` typed in the command line is text, not quit.
        keys(&mut s, ":q");
        assert!(!s.should_quit);
        key(&mut s, KeyCode::Enter);
        assert!(s.should_quit);
    }

    #[test]
    fn filter_nofilter_help_and_theme_do_what_their_keys_do() {
        let mut s = state(false);
        keys(&mut s, ":filter deny country:RU");
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.filter.text(), "deny country:RU");
        keys(&mut s, ":nofilter");
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.filter.text(), "");
        keys(&mut s, ":help");
        key(&mut s, KeyCode::Enter);
        assert!(matches!(
            s.overlay,
            Some(crate::console::app::Overlay::Help { .. })
        ));
        key(&mut s, KeyCode::Esc);
        keys(&mut s, ":theme light");
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.theme.name, "light");
        assert_eq!(s.message, Some(Ok("theme light".into())));
        keys(&mut s, ":theme solarized");
        key(&mut s, KeyCode::Enter);
        let Some(Err(e)) = &s.message else {
            panic!("{:?}", s.message)
        };
        assert!(
            e.contains("\"solarized\"") && e.contains("high-contrast"),
            "{e}"
        );
        assert_eq!(s.theme.name, "light", "unchanged");
    }

    #[test]
    fn unknown_command_is_said_in_the_footer() {
        let mut s = state(false);
        keys(&mut s, ":tokns");
        key(&mut s, KeyCode::Enter);
        assert_eq!(
            s.message,
            Some(Err("unknown command :tokns; did you mean :tokens?".into()))
        );
        let text = crate::console::bench::render(&s, 100, 30);
        let footer: String = (0..100).map(|x| text[(x, 29)].symbol()).collect();
        assert!(footer.contains("unknown command :tokns"), "{footer}");
        keys(&mut s, "j");
        assert_eq!(s.message, None, "cleared by the next key");
    }

    #[test]
    fn tab_completes_commands_and_arguments() {
        let s = state(false);
        assert_eq!(complete(&s, "tok"), ("tokens".into(), vec![]));
        assert_eq!(complete(&s, "th"), ("theme ".into(), vec![]));
        let (line, many) = complete(&s, "r");
        assert_eq!(line, "rotat");
        assert_eq!(many, ["rotations", "rotate"]);
        assert_eq!(
            complete(&s, "theme hi"),
            ("theme high-contrast".into(), vec![])
        );
        let (line, many) = complete(&s, "rotate ci");
        assert_eq!(line, "rotate ci-deploy-");
        assert_eq!(many.len(), 2);
        assert_eq!(
            complete(&s, "rotate dev"),
            ("rotate device-0001.factory.corp".into(), vec![])
        );
        assert_eq!(complete(&s, "zz"), ("zz".into(), vec![]));
        // :columns completes its last name from the current view's columns.
        assert_eq!(
            complete(&s, "columns apps id"),
            ("columns apps identity".into(), vec![])
        );
        assert_eq!(complete(&s, "cols res"), ("cols reset".into(), vec![]));
        // Read-only: no rotate, and no names to complete for it.
        let ro = state(true);
        assert_eq!(complete(&ro, "ro"), ("rotations".into(), vec![]));
        assert_eq!(complete(&ro, "rotate ci"), ("rotate ci".into(), vec![]));
    }

    #[test]
    fn history_walks_up_and_down_back_to_the_draft() {
        let mut s = state(false);
        for c in [":certs", ":log", ":log", ":alerts"] {
            keys(&mut s, c);
            key(&mut s, KeyCode::Enter);
        }
        assert_eq!(s.command_history, ["certs", "log", "alerts"]);
        keys(&mut s, ":tr");
        key(&mut s, KeyCode::Up);
        assert_eq!(s.command.as_ref().unwrap().input, "alerts");
        key(&mut s, KeyCode::Up);
        key(&mut s, KeyCode::Up);
        key(&mut s, KeyCode::Up);
        assert_eq!(
            s.command.as_ref().unwrap().input,
            "certs",
            "stops at the oldest"
        );
        key(&mut s, KeyCode::Down);
        assert_eq!(s.command.as_ref().unwrap().input, "log");
        key(&mut s, KeyCode::Down);
        key(&mut s, KeyCode::Down);
        assert_eq!(s.command.as_ref().unwrap().input, "tr", "back to the draft");
        key(&mut s, KeyCode::Tab);
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.view, ViewId::Traffic);
    }

    #[test]
    fn rotate_a_certificate_to_a_new_cn() {
        let mut s = state(false);
        keys(
            &mut s,
            ":rotate device-0001.factory.corp --new-cn device-0001.plant2.corp",
        );
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.view, ViewId::Certs);
        assert_eq!(
            s.pending_actions,
            [ConsoleAction::StartCert {
                serial: "01ab".into(),
                cn: "device-0001.factory.corp".into(),
                new_cn: Some("device-0001.plant2.corp".into()),
            }]
        );

        s.pending_actions.clear();
        keys(&mut s, ":rotate ci-deploy-prod --new-cn x.corp");
        key(&mut s, KeyCode::Enter);
        assert!(s.pending_actions.is_empty());
        assert!(
            matches!(&s.message, Some(Err(m)) if m.contains("--new-cn is for certificates")),
            "{:?}",
            s.message
        );

        keys(&mut s, ":rotate device-0001.factory.corp --new-cn");
        key(&mut s, KeyCode::Enter);
        assert!(s.pending_actions.is_empty());
        assert!(
            matches!(&s.message, Some(Err(m)) if m.contains("--new-cn takes one name")),
            "{:?}",
            s.message
        );
    }

    #[test]
    fn rotate_selects_the_credential_and_queues_what_r_queues() {
        let mut s = state(false);
        keys(&mut s, ":rotate ci-deploy-staging");
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.view, ViewId::Tokens);
        // A token asks how: same Client ID (s) or a new one (n).
        assert!(s.pending_actions.is_empty());
        keys(&mut s, "n");
        assert_eq!(
            s.pending_actions,
            [ConsoleAction::StartToken {
                name: "ci-deploy-staging".into(),
                in_place: false,
            }]
        );
        // The same as selecting it and pressing r.
        let mut by_key = state(false);
        keys(&mut by_key, "2");
        let i = crate::console::rows::tokens(&by_key)
            .iter()
            .position(|t| t.name == "ci-deploy-staging")
            .unwrap();
        by_key.selected[ViewId::Tokens.index()] = i;
        keys(&mut by_key, "rn");
        assert_eq!(by_key.pending_actions, s.pending_actions);
        assert_eq!(by_key.selected, s.selected);

        s.pending_actions.clear();
        keys(&mut s, ":rotate device-0001.factory.corp");
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.view, ViewId::Certs);
        assert!(matches!(
            &s.pending_actions[..],
            [ConsoleAction::StartCert { .. }]
        ));

        s.pending_actions.clear();
        keys(&mut s, ":rotate ci-deploy-prd");
        key(&mut s, KeyCode::Enter);
        assert!(s.pending_actions.is_empty());
        assert_eq!(
            s.message,
            Some(Err(
                "no token or certificate named ci-deploy-prd; did you mean ci-deploy-prod?".into()
            ))
        );
    }

    #[test]
    fn rotate_is_refused_when_read_only() {
        let mut s = state(true);
        keys(&mut s, ":rotate ci-deploy-prod");
        key(&mut s, KeyCode::Enter);
        assert!(s.pending_actions.is_empty());
        let Some(Err(e)) = &s.message else {
            panic!("{:?}", s.message)
        };
        assert!(
            e.starts_with(":rotate is disabled: read-only console"),
            "{e}"
        );
        assert_eq!(s.view, ViewId::Traffic, "nothing selected or switched");
    }

    #[test]
    fn snapshot_of_the_open_command_line() {
        let mut s = state(false);
        keys(&mut s, ":r");
        key(&mut s, KeyCode::Tab);
        let b = crate::console::bench::render(&s, 100, 30);
        let footer: String = (0..100).map(|x| b[(x, 29)].symbol()).collect();
        insta::assert_snapshot!("command_line_open", footer.trim_end());
    }
}

#[test]
fn help_lists_commands_without_rotate_when_read_only() {
    let rw = help_lines(false, &Keymap::default());
    assert!(
        rw.iter()
            .any(|(u, h)| u == ":freeze" && h.ends_with("jump to live (f)"))
    );
    assert!(rw.iter().any(|(u, _)| u == ":rotate NAME [--new-cn NEWCN]"));
    assert!(
        rw.iter()
            .any(|(u, h)| u == ":VIEW" && h.contains(" tokens "))
    );
    assert!(rw.iter().any(|(_, h)| h.contains("short: tr tok ")));
    assert!(
        !help_lines(true, &Keymap::default())
            .iter()
            .any(|(u, _)| u.starts_with(":rotate"))
    );
}
