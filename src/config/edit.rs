//! Format-preserving edits of the policy file for rotations: add a new token next to every
//! `{ service_token = OLD }` in an include, or remove a token from every include; the same for
//! certificate CNs named exactly by a `common_name` selector (a rotation to a new CN). Comments,
//! blank lines, key order and layout are kept (toml_edit); an edit is planned first (new text,
//! a diff to show, which policies change), then `apply` writes it atomically after a backup.
//!
//! Both plans are idempotent: adding a token that is already there, or removing one that is
//! not, changes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::finding::ConfigError;
use super::load;

#[path = "edit_select.rs"]
mod select;
use select::Sel;
pub use select::names_cn_exactly;

/// A planned change to the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The text the plan was made from; `apply` refuses if the file no longer holds it.
    pub old_text: String,
    pub new_text: String,
    /// Unified-style diff of old → new (empty when nothing changes).
    pub diff: String,
    /// `(app name, policy name)` of every policy the edit changes, in file order.
    pub changed_policies: Vec<(String, String)>,
    /// Things a human should know, e.g. the token also appears in a `require` list.
    pub notes: Vec<String>,
}

impl Edit {
    /// Whether the edit changes nothing (e.g. the token was already added).
    pub fn is_noop(&self) -> bool {
        self.old_text == self.new_text
    }
}

/// Why an edit cannot be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("invalid token name: {0}")]
    BadName(String),
    #[error("the policy file is not valid, fix it before editing it: {0}")]
    InvalidBefore(ConfigError),
    #[error("the edited policy file would not be valid (nothing was written): {0}")]
    InvalidAfter(ConfigError),
    #[error("the policy file cannot be edited: {0}")]
    Parse(#[from] toml_edit::TomlError),
    #[error(
        "removing {token:?} would leave policy {policy:?} of app {app:?} with an empty include, which never matches; add its replacement first, or delete the policy by hand"
    )]
    WouldEmptyInclude {
        app: String,
        policy: String,
        token: String,
    },
    #[error("{} changed since this edit was planned; plan it again", path.display())]
    Changed { path: PathBuf },
    #[error("nothing to write: the edit changes nothing")]
    Noop,
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Add `{ service_token = NEW }` right after every `{ service_token = OLD }` in an include.
pub fn plan_add_token(text: &str, old_name: &str, new_name: &str) -> Result<Edit, EditError> {
    crate::credential::validate_token_name(new_name).map_err(EditError::BadName)?;
    plan_add(text, Sel::token(old_name), Sel::token(new_name))
}

/// Remove every `{ service_token = NAME }` from every include. Refused when that would leave
/// an include empty.
pub fn plan_remove_token(text: &str, name: &str) -> Result<Edit, EditError> {
    plan_remove(text, Sel::token(name))
}

/// Add `{ common_name = "NEW" }` (escaped, so it admits exactly that CN) right after every
/// `common_name` selector in an include that names `old_cn` exactly (see
/// [`names_cn_exactly`]). Regex selectors are not touched: whether they admit the new CN is
/// the caller's check.
pub fn plan_add_common_name(text: &str, old_cn: &str, new_cn: &str) -> Result<Edit, EditError> {
    if new_cn.trim().is_empty() || new_cn.chars().any(char::is_control) {
        return Err(EditError::BadName(format!(
            "{new_cn:?} is not a usable certificate CN"
        )));
    }
    plan_add(text, Sel::cn(old_cn), Sel::cn(new_cn))
}

/// Remove every `common_name` selector that names `cn` exactly from every include. Refused
/// when that would leave an include empty.
pub fn plan_remove_common_name(text: &str, cn: &str) -> Result<Edit, EditError> {
    plan_remove(text, Sel::cn(cn))
}

fn plan_add(text: &str, old: Sel<'_>, new: Sel<'_>) -> Result<Edit, EditError> {
    let edit = plan(text, old, |include| match include {
        Include::Inline(arr) => add_inline(arr, old, new),
        Include::Tables(aot) => add_table(aot, old, new),
    })?;
    check_after(edit)
}

fn plan_remove(text: &str, sel: Sel<'_>) -> Result<Edit, EditError> {
    let edit = plan(text, sel, |include| match include {
        Include::Inline(arr) => remove_inline(arr, sel),
        Include::Tables(aot) => {
            let before = aot.len();
            aot.retain(|t| !is_sel_table(t, sel));
            before - aot.len()
        }
    })?;
    // A policy whose include became empty would never match again: say so specifically.
    if let Some(e) = empty_include_error(&edit, sel.name) {
        return Err(e);
    }
    check_after(edit)
}

/// The edited text must still be a valid policy file.
fn check_after(edit: Edit) -> Result<Edit, EditError> {
    if !edit.is_noop() {
        load::parse(Path::new("policy.toml"), &edit.new_text).map_err(EditError::InvalidAfter)?;
    }
    Ok(edit)
}

/// Write `edit` to `path`: back the current file up to `<path>.bak.<UTC timestamp>`, then write
/// a temp file in the same directory with the original mode and rename it over `path`.
/// Returns the backup's path. Refuses a no-op edit and a file changed since the plan.
pub fn apply(path: &Path, edit: &Edit) -> Result<PathBuf, EditError> {
    if edit.is_noop() {
        return Err(EditError::Noop);
    }
    // Edit the file a symlink points to, and keep the link.
    let target = std::fs::canonicalize(path).map_err(|source| io("resolve", path, source))?;
    let current = crate::input::read_to_string(&target, crate::input::POLICY_FILE)
        .map_err(|source| io("read", &target, source))?;
    if current != edit.old_text {
        return Err(EditError::Changed {
            path: path.to_path_buf(),
        });
    }
    let perms = std::fs::metadata(&target)
        .map_err(|source| io("stat", &target, source))?
        .permissions();
    let backup = backup_path(&target);
    std::fs::copy(&target, &backup).map_err(|source| io("back up to", &backup, source))?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|source| io("create a temp file in", dir, source))?;
    tmp.write_all(edit.new_text.as_bytes())
        .map_err(|source| io("write", tmp.path(), source))?;
    tmp.as_file()
        .sync_all()
        .map_err(|source| io("sync", tmp.path(), source))?;
    std::fs::set_permissions(tmp.path(), perms)
        .map_err(|source| io("set the mode of", tmp.path(), source))?;
    tmp.persist(&target)
        .map_err(|e| io("replace", &target, e.error))?;
    // Make the rename durable; best effort (not every platform can open a directory).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(backup)
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> EditError {
    EditError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `<file>.bak.<YYYYMMDDTHHMMSS.mmmZ>`, with a counter if that exists already.
fn backup_path(target: &Path) -> PathBuf {
    let name = target.file_name().map_or_else(
        || "policy.toml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let base = target.with_file_name(format!("{name}.bak.{stamp}"));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}.{n}", base.display()));
        n += 1;
    }
    candidate
}

/// An include list in one of its two TOML spellings.
enum Include<'a> {
    Inline(&'a mut toml_edit::Array),
    Tables(&'a mut ArrayOfTables),
}

/// Run `change` on every include (it returns how many selectors it changed) and build the Edit.
fn plan(
    text: &str,
    sel: Sel<'_>,
    mut change: impl FnMut(Include<'_>) -> usize,
) -> Result<Edit, EditError> {
    load::parse(Path::new("policy.toml"), text).map_err(EditError::InvalidBefore)?;
    let mut doc: DocumentMut = text.parse()?;
    let mut changed = Vec::new();
    let mut notes = Vec::new();
    if let Some(apps) = doc.get_mut("app").and_then(Item::as_array_of_tables_mut) {
        for app in apps.iter_mut() {
            let app_name = app
                .get("name")
                .and_then(Item::as_str)
                .unwrap_or_default()
                .to_string();
            let Some(policies) = app.get_mut("policy").and_then(Item::as_array_of_tables_mut)
            else {
                continue;
            };
            for policy in policies.iter_mut() {
                let policy_name = policy
                    .get("name")
                    .and_then(Item::as_str)
                    .unwrap_or_default()
                    .to_string();
                for key in ["require", "exclude"] {
                    if mentions(policy.get(key), sel) {
                        let what = if sel.key == "common_name" {
                            "CN"
                        } else {
                            "token"
                        };
                        notes.push(format!("app {app_name:?}, policy {policy_name:?}: {key} names {what} {:?}; review it by hand", sel.name));
                    }
                }
                let n = match policy.get_mut("include") {
                    Some(Item::Value(Value::Array(arr))) => change(Include::Inline(arr)),
                    Some(Item::ArrayOfTables(aot)) => change(Include::Tables(aot)),
                    _ => 0,
                };
                if n > 0 {
                    changed.push((app_name.clone(), policy_name));
                }
            }
        }
    }
    let new_text = doc.to_string();
    Ok(Edit {
        old_text: text.to_string(),
        diff: super::diff::unified("policy.toml", text, &new_text),
        new_text,
        changed_policies: changed,
        notes,
    })
}

fn mentions(item: Option<&Item>, sel: Sel<'_>) -> bool {
    match item {
        Some(Item::Value(Value::Array(arr))) => arr.iter().any(|v| is_sel_value(v, sel)),
        Some(Item::ArrayOfTables(aot)) => aot.iter().any(|t| is_sel_table(t, sel)),
        _ => false,
    }
}

fn is_sel_value(v: &Value, sel: Sel<'_>) -> bool {
    v.as_inline_table().is_some_and(|t| {
        t.len() == 1
            && t.get(sel.key)
                .and_then(Value::as_str)
                .is_some_and(|s| sel.names(s))
    })
}

fn is_sel_table(t: &Table, sel: Sel<'_>) -> bool {
    t.len() == 1
        && t.get(sel.key)
            .and_then(Item::as_str)
            .is_some_and(|s| sel.names(s))
}

fn add_table(aot: &mut ArrayOfTables, old: Sel<'_>, new: Sel<'_>) -> usize {
    if aot.iter().any(|t| is_sel_table(t, new)) {
        return 0;
    }
    let Some(i) = aot
        .iter()
        .enumerate()
        .filter(|(_, t)| is_sel_table(t, old))
        .map(|(i, _)| i)
        .last()
    else {
        return 0;
    };
    let Some(old_table) = aot.get(i) else {
        return 0;
    };
    let mut t = old_table.clone();
    // The old table's leading comments belong to it; keep only a blank-line separation.
    let sep = decor_str(t.decor().prefix()).contains('\n');
    t.decor_mut().set_prefix(if sep { "\n" } else { "" });
    if let Some(v) = t.get_mut(new.key).and_then(Item::as_value_mut) {
        *v = with_decor_of(v, &new.value());
    }
    aot.insert(i + 1, t);
    1
}

fn add_inline(arr: &mut toml_edit::Array, old: Sel<'_>, new: Sel<'_>) -> usize {
    if arr.iter().any(|v| is_sel_value(v, new)) {
        return 0;
    }
    let Some(i) = arr
        .iter()
        .enumerate()
        .filter(|(_, v)| is_sel_value(v, old))
        .map(|(i, _)| i)
        .last()
    else {
        return 0;
    };
    let Some(old_value) = arr.get(i) else {
        return 0;
    };
    let mut value = old_value.clone();
    if let Some(v) = value
        .as_inline_table_mut()
        .and_then(|t: &mut InlineTable| t.get_mut(new.key))
    {
        *v = with_decor_of(v, &new.value());
    }
    let old_prefix = decor_str(old_value.decor().prefix()).to_string();
    let old_suffix = decor_str(old_value.decor().suffix()).to_string();
    if !old_prefix.contains('\n') {
        // Single-line array: `[{ old }, { new }]`.
        value.decor_mut().set_prefix(" ");
        value.decor_mut().set_suffix(old_suffix);
        arr.insert_formatted(i + 1, value);
        return 1;
    }
    // One element per line. What follows the old element on its line (a comment after its
    // comma) stays on that line; the new element gets the old one's indentation.
    let indent = old_prefix
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .to_string();
    let is_last = i + 1 == arr.len();
    let follows = if !is_last {
        decor_str(arr.get(i + 1).and_then(|n| n.decor().prefix())).to_string()
    } else if old_suffix.contains('\n') {
        old_suffix.clone()
    } else {
        arr.trailing().as_str().unwrap_or_default().to_string()
    };
    let (same_line, rest) = split_first_line(&follows);
    value
        .decor_mut()
        .set_prefix(format!("{same_line}\n{indent}"));
    value.decor_mut().set_suffix("");
    if !is_last {
        if let Some(next) = arr.get_mut(i + 1) {
            next.decor_mut().set_prefix(format!("\n{rest}"));
        }
    } else if old_suffix.contains('\n') {
        // No trailing comma: the old element's suffix ran to the closing bracket.
        if let Some(o) = arr.get_mut(i) {
            o.decor_mut().set_suffix("");
        }
        value.decor_mut().set_suffix(format!("\n{rest}"));
    } else {
        arr.set_trailing(format!("\n{rest}"));
    }
    arr.insert_formatted(i + 1, value);
    1
}

fn remove_inline(arr: &mut toml_edit::Array, sel: Sel<'_>) -> usize {
    let mut removed = 0;
    loop {
        let found = arr.iter().position(|v| is_sel_value(v, sel));
        let Some(i) = found else { break };
        let gone = arr.remove(i);
        removed += 1;
        let prefix = decor_str(gone.decor().prefix()).to_string();
        let suffix = decor_str(gone.decor().suffix()).to_string();
        if !prefix.contains('\n') {
            // Single line: keep `[{` tight when the first element goes.
            if i == 0
                && let Some(next) = arr.get_mut(0)
            {
                next.decor_mut().set_prefix(prefix);
            }
            if i == arr.len()
                && i > 0
                && let Some(prev) = arr.get_mut(i - 1)
            {
                prev.decor_mut().set_suffix(suffix);
            }
            continue;
        }
        // One element per line: drop the comment that followed the removed element's comma,
        // keep the one that followed the previous element's (it starts the removed prefix).
        let (keep, _) = split_first_line(&prefix);
        if i < arr.len() {
            if let Some(next) = arr.get_mut(i) {
                let (_, rest) = split_first_line(decor_str(next.decor().prefix()));
                let p = format!("{keep}\n{rest}");
                next.decor_mut().set_prefix(p);
            }
        } else if suffix.contains('\n') {
            let (_, rest) = split_first_line(&suffix);
            if let Some(prev) = i.checked_sub(1).and_then(|k| arr.get_mut(k)) {
                prev.decor_mut().set_suffix(format!("{keep}\n{rest}"));
            }
        } else {
            let (_, rest) = split_first_line(arr.trailing().as_str().unwrap_or_default());
            let t = format!("{keep}\n{rest}");
            arr.set_trailing(t);
        }
    }
    removed
}

/// `s` up to its first newline, and what follows that newline.
fn split_first_line(s: &str) -> (&str, &str) {
    match s.split_once('\n') {
        Some((first, rest)) => (first, rest),
        None => (s, ""),
    }
}

fn decor_str(raw: Option<&toml_edit::RawString>) -> &str {
    raw.and_then(|r| r.as_str()).unwrap_or_default()
}

/// A string value `text` formatted with the decor (surrounding spaces) of `v`.
fn with_decor_of(v: &Value, text: &str) -> Value {
    let mut new = Value::from(text);
    *new.decor_mut() = v.decor().clone();
    new
}

fn empty_include_error(edit: &Edit, token: &str) -> Option<EditError> {
    let doc: DocumentMut = edit.new_text.parse().ok()?;
    for app in doc.get("app")?.as_array_of_tables()?.iter() {
        for policy in app
            .get("policy")
            .and_then(Item::as_array_of_tables)
            .into_iter()
            .flat_map(|p| p.iter())
        {
            let empty = match policy.get("include") {
                Some(Item::Value(Value::Array(a))) => a.is_empty(),
                Some(Item::ArrayOfTables(t)) => t.is_empty(),
                None => true,
                _ => false,
            };
            if empty {
                return Some(EditError::WouldEmptyInclude {
                    app: app
                        .get("name")
                        .and_then(Item::as_str)
                        .unwrap_or_default()
                        .into(),
                    policy: policy
                        .get("name")
                        .and_then(Item::as_str)
                        .unwrap_or_default()
                        .into(),
                    token: token.into(),
                });
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
