//! Drawing: `draw(frame, &AppState)` paints the header, the current view, the footer and any
//! overlay. Views only read the state; they never change it and never do I/O.

mod alerts;
mod certs;
pub mod columns;
pub mod issuers;
pub mod layout;
mod log;
mod pane;
mod policies;
mod rotations;
pub mod timelines;
mod tokens;
mod traffic;
pub mod widgets;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{AppState, Menu, MenuPurpose, Overlay, ViewId};
use super::command;
use super::keymap::Context;
use super::model::CredentialStatus;
use super::wizard::Prompt;

/// The smallest terminal the console draws in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Paint one frame.
pub fn draw(frame: &mut Frame, s: &AppState) {
    let area = frame.area();
    frame.render_widget(Block::new().style(s.theme.base()), area);
    let Some(layout::Screen {
        header,
        tabs,
        body,
        footer,
    }) = layout::screen(area)
    else {
        let msg = Text::from(vec![
            Line::from(format!(
                "terminal too small (need {MIN_WIDTH}×{MIN_HEIGHT})"
            )),
            Line::from(format!("now {}×{}", area.width, area.height)).style(s.theme.muted()),
        ]);
        let [mid] = Layout::vertical([Constraint::Length(2)])
            .flex(Flex::Center)
            .areas(area);
        frame.render_widget(
            Paragraph::new(msg).centered().wrap(Wrap { trim: true }),
            mid,
        );
        return;
    };
    draw_header(frame, header, s);
    draw_tabs(frame, tabs, s);
    match s.view {
        ViewId::Traffic => traffic::draw(frame, body, s),
        ViewId::Tokens => tokens::draw(frame, body, s),
        ViewId::Certs => certs::draw(frame, body, s),
        ViewId::Alerts => alerts::draw(frame, body, s),
        ViewId::Policies => policies::draw(frame, body, s),
        ViewId::Rotations => rotations::draw(frame, body, s),
        ViewId::Log => log::draw(frame, body, s),
        ViewId::Issuers => issuers::draw(frame, body, s),
    }
    draw_footer(frame, footer, s);
    match &s.overlay {
        Some(Overlay::Help { scroll }) => draw_help(frame, body, s, *scroll),
        Some(Overlay::Details {
            title,
            lines,
            scroll,
        }) => draw_details(frame, body, s, title, lines, *scroll),
        None => {}
    }
    if let Some(menu) = &s.menu {
        draw_menu(frame, body, s, menu);
    }
}

/// A menu: each item's name and the start of its text (what `Y` copies, the filter applied).
fn draw_menu(frame: &mut Frame, area: Rect, s: &AppState, menu: &Menu) {
    let t = &s.theme;
    let w = area.width.saturating_sub(8).min(120);
    let preview_w = usize::from(w.saturating_sub(6));
    let mut lines = Vec::new();
    for (i, item) in menu.items.iter().enumerate() {
        let style = if i == menu.selected {
            t.selection()
        } else {
            t.base()
        };
        let mark = if i == menu.selected {
            widgets::SELECTED
        } else {
            "  "
        };
        lines.push(Line::styled(format!("{mark}{}", item.what), style));
        let first: String = item.text.chars().take(preview_w).collect();
        let more = if item.text.chars().count() > preview_w {
            "…"
        } else {
            ""
        };
        lines.push(Line::styled(format!("    {first}{more}"), t.muted()));
    }
    let r = centered(area, w, lines.len() as u16 + 2);
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines)
            .block(widgets::block(
                t,
                match menu.purpose {
                    MenuPurpose::Copy => " copy · Enter copies · Esc closes ",
                    MenuPurpose::ApplyFilter => " saved filters · Enter applies · Esc closes ",
                },
            ))
            .style(t.base()),
        r,
    );
}

fn draw_header(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let h = t.header();
    let sep = Span::styled(" │ ", h);
    let listen = if s.header.listen.is_empty() {
        "-".to_string()
    } else {
        s.header.listen.join(" ")
    };
    let open = s.alerts.open_count();
    // Most important first: a narrow terminal cuts from the right.
    let mut spans = vec![Span::styled(" botgate ", h.add_modifier(Modifier::BOLD))];
    if s.frozen.is_some() {
        spans.push(sep.clone());
        spans.push(Span::styled(
            format!("frozen · {} new", s.new_since_frozen()),
            t.badge(),
        ));
    }
    // Loading the log's history: the views fill up as it goes.
    if let Some((read, total)) = s.feed.loading {
        spans.push(sep.clone());
        spans.push(Span::styled(
            format!(
                "loading history {}% ({} of {} MiB)",
                read * 100 / total.max(1),
                read / (1024 * 1024),
                total.div_ceil(1024 * 1024)
            ),
            t.badge(),
        ));
    }
    spans.extend([
        sep.clone(),
        Span::styled(format!("{:.1} req/s", s.req_per_sec()), h),
        sep.clone(),
        Span::styled(
            format!("{open} alert{}", if open == 1 { "" } else { "s" }),
            if open > 0 {
                h.add_modifier(Modifier::BOLD)
            } else {
                h
            },
        ),
        sep.clone(),
        Span::styled(format!("up {}", widgets::span(s.now - s.started_at)), h),
        sep.clone(),
        Span::styled(format!("gate {listen}"), h),
    ]);
    if !s.header.source.is_empty() {
        spans.push(sep.clone());
        spans.push(Span::styled(s.header.source.clone(), h));
    }
    if let Some(history) = &s.header.history {
        // How far back the views can look: what was asked for, and the oldest event read.
        let from = s.traffic.oldest.map_or(String::new(), |o| {
            format!(
                ", from {} ({} ago)",
                widgets::clock_time(s.now, o),
                widgets::span(s.now - o)
            )
        });
        spans.push(Span::styled(format!(" · {history}{from}"), h));
    }
    let mut problems = Vec::new();
    if let Some(e) = &s.feed.store_error {
        problems.push(e.clone());
    }
    if s.feed.dropped > 0 {
        problems.push(format!("{} dropped", s.feed.dropped));
    }
    if s.feed.corrupt_lines > 0 {
        problems.push(format!("{} corrupt lines", s.feed.corrupt_lines));
    }
    if let Some(n) = &s.feed.notice {
        problems.push(n.clone());
    }
    if !problems.is_empty() {
        spans.push(sep);
        spans.push(Span::styled(
            problems.join(", "),
            h.add_modifier(Modifier::BOLD),
        ));
    }
    let badge = if s.header.read_only {
        " READ-ONLY "
    } else {
        ""
    };
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(badge.len() as u16)])
            .areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)).style(h), left);
    frame.render_widget(
        Paragraph::new(Span::styled(badge, t.badge())).style(h),
        right,
    );
}

fn draw_tabs(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let mut spans = Vec::new();
    for v in ViewId::ALL {
        let label = layout::tab_label(v);
        if v == s.view {
            spans.push(Span::styled(label, t.selection()));
        } else {
            spans.push(Span::styled(label, t.muted()));
        }
        spans.push(Span::raw(" "));
    }
    let filter = match (&s.filter_input, s.filter.text()) {
        (Some(input), _) => Span::styled(format!("/{input}█"), t.accent()),
        (None, "") => Span::raw(""),
        (None, f) => Span::styled(format!("filter: {f} (Esc clears)"), t.accent()),
    };
    let fw = filter.width() as u16;
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(fw + 1)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), l);
    frame.render_widget(Paragraph::new(filter), r);
}

fn draw_footer(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let mut spans = Vec::new();
    let ctx = s.context();
    if ctx == Context::FilterInput {
        spans.push(Span::styled(
            "filter: deny  ci-deploy  country:RU  app:api  reason:revoked  !allow   ",
            t.muted(),
        ));
    }
    match &s.prompt {
        Some(Prompt::ConfirmAbort { id }) => spans.push(Span::styled(
            format!("abort {id}? the new credential is revoked and removed from policies   "),
            t.accent().add_modifier(Modifier::BOLD),
        )),
        Some(Prompt::ChooseTokenRotation { name }) => spans.push(Span::styled(
            format!(
                "rotate {name}: [s] same Client ID (new secret, nothing to edit)  [n] new Client ID ({name}-v2)  [Esc] cancel   "
            ),
            t.accent().add_modifier(Modifier::BOLD),
        )),
        Some(Prompt::TypeName { name, input, .. }) => {
            spans.push(Span::styled(
                format!("revoke {name}: type its name to confirm: "),
                t.accent().add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::styled(format!("{input}█   "), t.base()));
        }
        None => {}
    }
    if let Some(cl) = &s.command {
        spans.push(Span::styled(
            format!(":{}█   ", cl.input),
            t.accent().add_modifier(Modifier::BOLD),
        ));
    }
    match &s.message {
        Some(Ok(text)) => spans.push(Span::styled(format!("{text}   "), t.base())),
        Some(Err(text)) => spans.push(Span::styled(
            format!("{text}   "),
            t.status(CredentialStatus::Critical)
                .add_modifier(Modifier::BOLD),
        )),
        None => {}
    }
    // The rotation choice names its own keys ([s] [n] [Esc]); the text-prompt hints would not fit it.
    let own_keys = matches!(s.prompt, Some(Prompt::ChooseTokenRotation { .. }));
    for (label, hint) in s
        .keymap
        .footer_hints(ctx, s.view, s.header.read_only)
        .filter(|_| !own_keys)
    {
        spans.push(Span::styled(label, t.accent()));
        spans.push(Span::styled(format!(" {hint}  "), t.muted()));
    }
    if ctx == Context::Normal {
        spans.push(Span::styled(
            format!("sort: {}", s.sort_label(s.view)),
            t.muted(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A rectangle of `w`×`h` centred in `area` (clipped to it).
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [c] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    c
}

fn draw_help(frame: &mut Frame, area: Rect, s: &AppState, scroll: u16) {
    let t = &s.theme;
    let keys: Vec<(String, &str)> = s.keymap.help_lines().collect();
    let commands = command::help_lines(s.header.read_only, &s.keymap);
    // One column width for keys and commands, so a long usage (`:rotate NAME [--new-cn NEWCN]`)
    // never runs into its help text.
    let col = keys
        .iter()
        .map(|(k, _)| k.chars().count())
        .chain(commands.iter().map(|(u, _)| u.chars().count()))
        .max()
        .unwrap_or(0)
        + 2;
    let row = |left: &str, help: &str| {
        Line::from(vec![
            Span::styled(format!("{left:<col$}"), t.accent()),
            Span::styled(help.to_string(), t.base()),
        ])
    };
    let mut lines: Vec<Line> = keys.iter().map(|(k, h)| row(k, h)).collect();
    lines.push(Line::raw(""));
    lines.extend(commands.iter().map(|(u, h)| row(u, h)));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Filter terms (all must match): deny allow bypass error, key:value with",
        t.muted(),
    ));
    lines.push(Line::styled(
        "country app host ip reason status id method kind path; other text",
        t.muted(),
    ));
    lines.push(Line::styled(
        "matches identity, app, host, path, IP, country, reason; !term negates.",
        t.muted(),
    ));
    let h = lines.len() as u16 + 2;
    let w = lines.iter().map(|l| l.width() as u16).max().unwrap_or(40) + 2;
    let r = centered(area, w, h);
    frame.render_widget(Clear, r);
    let p = Paragraph::new(lines)
        .block(widgets::block(t, " help · Esc closes "))
        .style(t.base())
        .scroll((scroll, 0));
    frame.render_widget(p, r);
}

fn draw_details(
    frame: &mut Frame,
    area: Rect,
    s: &AppState,
    title: &str,
    lines: &[String],
    scroll: u16,
) {
    let t = &s.theme;
    let w = (lines.iter().map(|l| l.chars().count()).max().unwrap_or(20) as u16 + 4)
        .clamp(40, area.width.saturating_sub(4));
    let r = centered(area, w, lines.len() as u16 + 2);
    frame.render_widget(Clear, r);
    let p = widgets::details(t, format!(" {title} · Esc closes "), lines).scroll((scroll, 0));
    frame.render_widget(p, r);
}
