//! View 6, Rotations: every rotation with a step indicator (`create ✓ → add ✓ → rollout ● →
//! verify → revoke`), and for the selected one the wizard: why each step comes where it does,
//! the live evidence (old vs new requests, clients still on the old credential by IP), the next
//! action and its key, and why the next step would be refused now.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::actions;
use crate::console::app::{AppState, ViewId};
use crate::console::model::{CredentialStatus, RotationRow};
use crate::rotation::{RotationState, RotationView};

use super::widgets::{Col, block, clock_time, col, or_dash, seen, title};

/// Table rows shown above the wizard before the list scrolls.
const LIST_ROWS: usize = 6;

/// Issuer key-set changes listed at the bottom.
const KEY_CHANGE_ROWS: usize = 4;

/// What the key-rotations panel says they are.
pub const KEY_CHANGE_TEXT: &str = "an OIDC issuer rotated its signing keys; tokens signed with a removed key id are refused (oidc_bad_signature)";

/// The Rotations table's columns.
pub fn cols() -> [Col; 6] {
    [
        col("id", Constraint::Length(10)),
        col("kind", Constraint::Length(5)),
        col("old", Constraint::Fill(2)),
        col("new", Constraint::Fill(2)),
        col("steps", Constraint::Length(48)),
        col("state", Constraint::Length(11)),
    ]
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AppState) {
    let (area, keys) = split_key_changes(area, s);
    if let Some(keys) = keys {
        draw_key_changes(frame, keys, s);
    }
    let t = &s.theme;
    let blk = block(
        t,
        title(t, "rotations", &[format!("{}", s.rotations.len())]),
    );
    if s.rotations.is_empty() {
        let inner = blk.inner(area);
        frame.render_widget(blk, area);
        let [mid] = Layout::vertical([Constraint::Length(2)])
            .flex(Flex::Center)
            .areas(inner);
        let hint = if s.header.read_only || !s.actions_available {
            "start one with `botgate rotate start token NAME`"
        } else {
            "press r on a token (view 2) or a certificate (view 3) to start one"
        };
        let p = Paragraph::new(vec![
            Line::styled("no rotations", t.base()),
            Line::styled(hint, t.muted()),
        ])
        .centered();
        frame.render_widget(p, mid);
        return;
    }
    let (list, wizard) = layout(area, s);
    super::columns::view_table(
        frame,
        list,
        s,
        ViewId::Rotations,
        blk,
        &cols(),
        s.rotations.len(),
        Some(s.selected[ViewId::Rotations.index()]),
        s.scroll[ViewId::Rotations.index()],
        |i| {
            let r = &s.rotations[i].view;
            let cells = vec![
                Line::from(r.id.clone()),
                Line::from(r.kind.as_str()),
                Line::from(r.old.clone()),
                Line::from(or_dash(r.new.as_deref())),
                Line::from(step_indicator(r)),
                Line::from(state_label(r)),
            ];
            (cells, t.base())
        },
    );
    if let Some(r) = s.rotations.get(s.selected[ViewId::Rotations.index()]) {
        draw_wizard(frame, wizard, s, r);
    }
}

/// The rotations table and the wizard below it (for a non-empty list).
pub fn layout(area: Rect, s: &AppState) -> (Rect, Rect) {
    let area = split_key_changes(area, s).0;
    let list_h = s.rotations.len().min(LIST_ROWS) as u16 + 3;
    let [list, wizard] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Min(0)]).areas(area);
    (list, wizard)
}

/// The area of the rotations, and below it the issuers' key-set changes when there are any.
fn split_key_changes(area: Rect, s: &AppState) -> (Rect, Option<Rect>) {
    if s.key_changes.is_empty() {
        return (area, None);
    }
    let h = s.key_changes.len().min(KEY_CHANGE_ROWS) as u16 + 3;
    let [rest, keys] = Layout::vertical([Constraint::Min(0), Constraint::Length(h)]).areas(area);
    (rest, Some(keys))
}

/// The issuers' key-set changes seen in the events (the gate's `oidc_keys_changed`), newest
/// first: the rotations botgate does not drive but must follow.
fn draw_key_changes(frame: &mut Frame, area: Rect, s: &AppState) {
    let t = &s.theme;
    let mut lines = vec![Line::styled(KEY_CHANGE_TEXT, t.muted())];
    for c in s.key_changes.iter().take(KEY_CHANGE_ROWS) {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<9}", clock_time(s.now, c.at)), t.muted()),
            Span::styled(format!("{:<16}", c.issuer), t.title()),
            Span::styled(
                format!("added {}", list(&c.added)),
                t.status(CredentialStatus::Ok),
            ),
            Span::raw("  "),
            Span::styled(
                format!("removed {}", list(&c.removed)),
                if c.removed.is_empty() {
                    t.base()
                } else {
                    t.status(CredentialStatus::Warn)
                },
            ),
            Span::styled(format!("  now {}", list(&c.kids)), t.muted()),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines).block(block(
            t,
            title(
                t,
                "OIDC issuer key rotations",
                &[format!("{}", s.key_changes.len())],
            ),
        )),
        area,
    );
}

/// `create ✓ → add ✓ → rollout ● → verify → revoke`: ✓ done, ● what `n` does next, ✗ where an
/// aborted rotation stopped.
pub fn step_indicator(r: &RotationView) -> String {
    r.steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            if st.done {
                format!("{} ✓", st.name)
            } else if i == r.step_index && r.state == RotationState::Aborted {
                format!("{} ✗", st.name)
            } else if i == r.step_index {
                format!("{} ●", st.name)
            } else {
                st.name.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn state_label(r: &RotationView) -> String {
    if r.forced {
        format!("{} (forced)", r.state.as_str())
    } else {
        r.state.as_str().to_string()
    }
}

fn draw_wizard(frame: &mut Frame, area: Rect, s: &AppState, row: &RotationRow) {
    let t = &s.theme;
    let r = &row.view;
    let blk = block(
        t,
        title(
            t,
            &format!("{} · {} {}", r.id, r.kind.as_str(), r.old),
            &[format!("→ {}", or_dash(r.new.as_deref()))],
        ),
    );
    let inner = blk.inner(area);
    frame.render_widget(blk, area);
    let width = usize::from(inner.width.saturating_sub(1)).max(20);
    // On a short terminal only the current step explains itself.
    let explain_all = inner.height >= 28;
    let bold = t.base().add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = Vec::new();

    lines.push(Line::from(vec![
        Span::styled(step_indicator(r), bold),
        Span::styled(
            format!(
                "   state {} · quiet period {} · at least {} new request{}",
                state_label(r),
                r.quiet_period,
                r.min_requests,
                if r.min_requests == 1 { "" } else { "s" }
            ),
            t.muted(),
        ),
    ]));
    if r.forced {
        lines.push(Line::styled(
            "the old credential was revoked without passed verification (forced, recorded)",
            t.status(CredentialStatus::Warn),
        ));
    }

    let head_len = lines.len();
    lines.push(Line::styled("steps (why this order)", t.title()));
    for (i, st) in r.steps.iter().enumerate() {
        let (mark, style) = if st.done {
            ("✓", t.status(CredentialStatus::Ok))
        } else if i == r.step_index && !r.state.is_finished() {
            ("●", t.accent())
        } else {
            (" ", t.muted())
        };
        let when = st.done_at.map_or_else(
            || "        ".to_string(),
            |at| at.format("%H:%M:%S").to_string(),
        );
        let head = format!(" {mark} {:<8} {when}  ", st.name);
        let current = i == r.step_index;
        if explain_all || current {
            push_wrapped(&mut lines, &head, &st.explanation, width, style, t.base());
        } else {
            lines.push(Line::styled(head, style));
        }
    }

    lines.push(Line::styled(
        "evidence (live, from the audit stream)",
        t.title(),
    ));
    for e in &r.evidence {
        push_wrapped(&mut lines, "  ", e, width, t.base(), t.base());
    }
    let clients = &r.traffic.clients;
    for c in clients.iter().take(8) {
        let on_old = c.last_credential == crate::rotation::evidence::Which::Old;
        let style = if on_old && r.new.is_some() {
            t.status(CredentialStatus::Warn)
        } else {
            t.base()
        };
        lines.push(Line::styled(
            format!(
                "  {:<15} on {:<3}  {:>5} old / {:<5} new  last seen {:<8} {}",
                c.ip,
                if on_old { "old" } else { "new" },
                c.old_requests,
                c.new_requests,
                seen(s.now, Some(c.last_seen)),
                c.user_agent.as_deref().unwrap_or("")
            ),
            style,
        ));
    }
    if clients.len() > 8 {
        lines.push(Line::styled(
            format!("  … and {} more clients", clients.len() - 8),
            t.muted(),
        ));
    }

    let next_at = lines.len();
    lines.push(Line::styled("next", t.title()));
    if let Some(next) = &r.next_action {
        let key = if r.state == RotationState::Verified {
            "n  (type the name)  "
        } else {
            "n  "
        };
        push_wrapped(
            &mut lines,
            &format!("  {key}"),
            next,
            width,
            t.accent(),
            t.base(),
        );
        if let Some(why) = &r.refused_reason {
            push_wrapped(
                &mut lines,
                "  refused now: ",
                why,
                width,
                t.status(CredentialStatus::Warn),
                t.status(CredentialStatus::Warn),
            );
        }
        let keys = if s.header.read_only {
            actions::READ_ONLY.to_string()
        } else if !s.actions_available {
            actions::NO_STORE.to_string()
        } else {
            "R revoke now (type the name; recorded as forced if verify has not passed)   x abort"
                .to_string()
        };
        push_wrapped(&mut lines, "  ", &keys, width, t.muted(), t.muted());
    } else {
        lines.push(Line::styled(
            format!("  nothing left: the rotation is {}", r.state.as_str()),
            t.muted(),
        ));
    }
    if !r.new_credential_files.is_empty() {
        push_wrapped(
            &mut lines,
            "  new credential in ",
            &r.new_credential_files.join(", "),
            width,
            t.muted(),
            t.muted(),
        );
    }
    match &s.last_action {
        Some(Ok(text)) => push_wrapped(
            &mut lines,
            "last action: ",
            text,
            width,
            t.status(CredentialStatus::Ok),
            t.base(),
        ),
        Some(Err(text)) => push_wrapped(
            &mut lines,
            "last action: ",
            text,
            width,
            t.status(CredentialStatus::Critical),
            t.status(CredentialStatus::Critical),
        ),
        None => {}
    }
    if !explain_all {
        // Short terminal: what to do next (and why it would be refused) before the details.
        let tail = lines.split_off(next_at);
        let details = lines.split_off(head_len);
        lines.extend(tail);
        lines.extend(details);
    }
    frame.render_widget(Paragraph::new(lines).style(t.base()), inner);
}

/// `head` then `text` word-wrapped to `width`, continuation lines indented under the text.
fn push_wrapped(
    lines: &mut Vec<Line<'static>>,
    head: &str,
    text: &str,
    width: usize,
    head_style: Style,
    text_style: Style,
) {
    let indent = head.chars().count();
    let room = width.saturating_sub(indent).max(10);
    let mut first = true;
    for chunk in wrap(text, room) {
        let lead = if first {
            Span::styled(head.to_string(), head_style)
        } else {
            Span::raw(" ".repeat(indent))
        };
        first = false;
        lines.push(Line::from(vec![lead, Span::styled(chunk, text_style)]));
    }
    if first {
        lines.push(Line::styled(head.to_string(), head_style));
    }
}

/// Greedy word wrap by characters; a word longer than `width` is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            let cut: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            out.push(cut);
        }
        let need = cur.chars().count() + usize::from(!cur.is_empty()) + word.chars().count();
        if need > width && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_cuts_long_ones() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefgh x", 3), ["abc", "def", "gh", "x"]);
        assert!(wrap("", 5).is_empty());
    }
}
