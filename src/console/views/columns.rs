//! `:columns`: which columns each view's table shows, and in which order. A view's columns
//! are named by their headers (lower case, spaces as `-`: `last-seen`, `deny-%`); a choice
//! (`AppState::columns`, kept in the config dir's `columns.toml`) lists the names to show, in
//! order, and the rest are hidden. Without a choice a view shows its columns as shipped (the
//! least important dropped on a narrow terminal).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::Block;

use crate::console::app::{AppState, ViewId};

use super::widgets::{Col, windowed_table};
use super::{alerts, certs, issuers, log, policies, rotations, tokens, traffic};

/// The columns `view`'s table has, as shipped.
pub fn of_view(s: &AppState, view: ViewId) -> Vec<Col> {
    match view {
        ViewId::Traffic => traffic::identity_cols().to_vec(),
        ViewId::Tokens => tokens::cols(),
        ViewId::Certs => certs::cols(),
        ViewId::Alerts => alerts::cols().to_vec(),
        ViewId::Policies => policies::cols().to_vec(),
        ViewId::Rotations => rotations::cols().to_vec(),
        ViewId::Log => log::log_columns(s.shown_traffic().several_nodes()),
        ViewId::Issuers => issuers::cols().to_vec(),
    }
}

/// A column's name in `:columns` and `columns.toml`.
pub fn name(c: &Col) -> String {
    c.header.to_lowercase().replace(' ', "-")
}

/// The names of `view`'s columns, as shipped.
pub fn names(s: &AppState, view: ViewId) -> Vec<String> {
    of_view(s, view).iter().map(name).collect()
}

/// `view`'s table with the columns chosen for it (all of `cols` when none were). The rows are
/// built whole by `make_row`, then the chosen cells taken in the chosen order.
#[allow(clippy::too_many_arguments)]
pub fn view_table<'a>(
    frame: &mut Frame,
    area: Rect,
    s: &AppState,
    view: ViewId,
    block: Block<'a>,
    cols: &[Col],
    total: usize,
    selected: Option<usize>,
    scroll: usize,
    mut make_row: impl FnMut(usize) -> (Vec<Line<'a>>, Style),
) {
    let pick: Option<Vec<usize>> = s.columns.get(view).map(|chosen| {
        chosen
            .iter()
            .filter_map(|n| cols.iter().position(|c| &name(c) == n))
            .collect()
    });
    let Some(pick) = pick.filter(|p| !p.is_empty()) else {
        windowed_table(
            frame, area, &s.theme, block, cols, total, selected, scroll, make_row,
        );
        return;
    };
    // Chosen columns are shown whatever the width: the user asked for them.
    let chosen: Vec<Col> = pick
        .iter()
        .map(|&i| Col {
            min_table_width: 0,
            ..cols[i]
        })
        .collect();
    windowed_table(
        frame,
        area,
        &s.theme,
        block,
        &chosen,
        total,
        selected,
        scroll,
        |i| {
            let (cells, style) = make_row(i);
            let mut cells: Vec<Option<Line<'a>>> = cells.into_iter().map(Some).collect();
            let picked = pick
                .iter()
                .map(|&j| cells.get_mut(j).and_then(Option::take).unwrap_or_default())
                .collect();
            (picked, style)
        },
    );
}
