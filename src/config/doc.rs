//! The policy file as a spanned TOML tree, used to turn a byte span into a finding: the line and
//! column, the field path (`app[0].policy[1].include[0].ip`) and the human place
//! (`app "api.example.com", policy "CI deployment", include[0].ip`).
//!
//! Lookups go by span, not by index into the model, so they stay right even when some apps or
//! policies failed to deserialize and were left out of the model.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::finding::{Finding, Severity, line_col};

/// One step from the root to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A parsed policy file with its path, for locating findings.
pub(crate) struct Doc<'i> {
    pub path: PathBuf,
    pub text: &'i str,
    pub root: Spanned<DeTable<'i>>,
}

/// The way from the root to one value: each segment with the value it reaches.
pub(crate) type Trail<'a, 'i> = Vec<(Seg, &'a Spanned<DeValue<'i>>)>;

impl<'i> Doc<'i> {
    /// Parse `text`; syntax errors come back as error findings (all of them, best effort).
    pub fn parse(path: &Path, text: &'i str) -> (Self, Vec<Finding>) {
        let (root, errors) = DeTable::parse_recoverable(text);
        let doc = Doc {
            path: path.to_path_buf(),
            text,
            root,
        };
        let findings = errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let mut f = doc.finding(
                    Severity::Error,
                    span,
                    format!("TOML syntax: {}", e.message()),
                    None,
                );
                // A syntax error has no trustworthy field path.
                f.field.clear();
                f.place.clear();
                f
            })
            .collect();
        (doc, findings)
    }

    /// A finding at `span` with its field path and place filled in.
    pub fn finding(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Finding {
        let (line, col) = line_col(self.text, span.start);
        let trail = self.trail(&span);
        Finding {
            severity,
            path: self.path.clone(),
            line,
            col,
            field: field_path(&trail),
            place: place(&trail),
            message: message.into(),
            hint,
        }
    }

    /// The deepest chain of values (or keys) whose span contains `target`.
    pub fn trail(&self, target: &Range<usize>) -> Trail<'_, 'i> {
        let mut out = Vec::new();
        descend_table(self.root.get_ref(), target, &mut out);
        out
    }

    /// The value whose span is exactly `span` (e.g. the inline table of a `Spanned<Selector>`).
    pub fn node(&self, span: &Range<usize>) -> Option<&Spanned<DeValue<'i>>> {
        self.trail(span)
            .into_iter()
            .rev()
            .map(|(_, v)| v)
            .find(|v| v.span() == *span)
    }

    /// The span of `key` in the table that holds the value at `span` (a sibling field), e.g.
    /// the `include` array of the policy whose `name` is at `span`.
    pub fn sibling(&self, span: &Range<usize>, key: &str) -> Option<Range<usize>> {
        let trail = self.trail(span);
        let idx = trail.iter().rposition(|(_, v)| v.span() == *span)?;
        let parent = if idx == 0 {
            self.root.get_ref()
        } else {
            trail[idx - 1].1.get_ref().as_table()?
        };
        parent.get(key).map(|v| v.span())
    }

    /// The span of element `index` of the list (or the single value) held by the one-key
    /// selector table at `selector_span`; falls back to the selector itself.
    pub fn selector_value(&self, selector_span: &Range<usize>, index: usize) -> Range<usize> {
        let Some(table) = self
            .node(selector_span)
            .and_then(|n| n.get_ref().as_table())
        else {
            return selector_span.clone();
        };
        let Some((_, value)) = table.iter().next() else {
            return selector_span.clone();
        };
        match value.get_ref().as_array() {
            Some(items) => items.get(index).map_or(value.span(), |v| v.span()),
            None => value.span(),
        }
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn descend_table<'a, 'i>(
    table: &'a DeTable<'i>,
    target: &Range<usize>,
    out: &mut Trail<'a, 'i>,
) -> bool {
    for (key, value) in table.iter() {
        let seg = Seg::Key(key.get_ref().to_string());
        if contains(&key.span(), target) {
            out.push((seg, value));
            return true;
        }
        let mark = out.len();
        out.push((seg, value));
        if descend_value(value, target, out) {
            return true;
        }
        out.truncate(mark);
    }
    false
}

/// `out` already ends with `value`; extend it as deep as possible. True when `target` is in here.
fn descend_value<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    target: &Range<usize>,
    out: &mut Trail<'a, 'i>,
) -> bool {
    let found_below = match value.get_ref() {
        DeValue::Table(t) => descend_table(t, target, out),
        DeValue::Array(items) => {
            let mut found = false;
            for (i, item) in items.iter().enumerate() {
                let mark = out.len();
                out.push((Seg::Index(i), item));
                if descend_value(item, target, out) {
                    found = true;
                    break;
                }
                out.truncate(mark);
            }
            found
        }
        _ => false,
    };
    // Array-of-tables elements span only their `[[header]]`, so children are searched first.
    found_below || contains(&value.span(), target)
}

/// `app[0].policy[1].include[0].ip`; a trailing index into a list of scalars is dropped (the
/// message quotes the value).
fn field_path(trail: &Trail<'_, '_>) -> String {
    let mut segs: Vec<&Seg> = trail.iter().map(|(s, _)| s).collect();
    if let (Some(Seg::Index(_)), Some((_, v))) = (segs.last(), trail.last())
        && !v.get_ref().is_table()
    {
        segs.pop();
    }
    let mut out = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// `app "api.example.com", policy "CI deployment", include[0].ip`.
fn place(trail: &Trail<'_, '_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut rest = String::new();
    let mut i = 0;
    while i < trail.len() {
        let (seg, _) = &trail[i];
        if let (Seg::Key(k), Some((Seg::Index(n), item))) = (seg, trail.get(i + 1))
            && (k == "app" || k == "policy")
            && rest.is_empty()
        {
            let name = item
                .get_ref()
                .as_table()
                .and_then(|t| t.get("name"))
                .and_then(|v| v.get_ref().as_str());
            parts.push(match name {
                Some(name) => format!("{k} {name:?}"),
                None => format!("{k}[{n}]"),
            });
            i += 2;
            continue;
        }
        match seg {
            Seg::Key(k) => {
                if !rest.is_empty() {
                    rest.push('.');
                }
                rest.push_str(k);
            }
            Seg::Index(n) => {
                if i + 1 == trail.len() && !trail[i].1.get_ref().is_table() {
                    break;
                }
                rest.push_str(&format!("[{n}]"));
            }
        }
        i += 1;
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[gate]
trusted_proxies = ["10.0.0.0/8", "bad"]

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci" }, { ip = ["10.0.0/8", "1.2.3.4/32"] }]
"#;

    fn span_of(text: &str, needle: &str) -> Range<usize> {
        let start = text.find(needle).unwrap();
        start..start + needle.len()
    }

    #[test]
    fn locates_nested_values_with_field_and_place() {
        let (doc, errs) = Doc::parse(Path::new("policy.toml"), TEXT);
        assert!(errs.is_empty());
        let f = doc.finding(Severity::Error, span_of(TEXT, "\"10.0.0/8\""), "bad", None);
        assert_eq!((f.line, f.col), (12, 46));
        assert_eq!(f.field, "app[0].policy[0].include[1].ip");
        assert_eq!(
            f.place,
            "app \"api.example.com\", policy \"CI deployment\", include[1].ip"
        );
        let g = doc.finding(Severity::Error, span_of(TEXT, "\"bad\""), "bad", None);
        assert_eq!(g.field, "gate.trusted_proxies");
        assert_eq!(g.place, "gate.trusted_proxies");
    }

    #[test]
    fn sibling_and_selector_value() {
        let (doc, _) = Doc::parse(Path::new("p.toml"), TEXT);
        let name = span_of(TEXT, "\"CI deployment\"");
        let include = doc.sibling(&name, "include").unwrap();
        assert!(TEXT[include].starts_with("[{ service_token"));
        let sel = span_of(TEXT, "{ ip = [\"10.0.0/8\", \"1.2.3.4/32\"] }");
        assert_eq!(&TEXT[doc.selector_value(&sel, 1)], "\"1.2.3.4/32\"");
    }

    #[test]
    fn syntax_errors_are_all_findings() {
        let (_, errs) = Doc::parse(Path::new("p.toml"), "[gate\nx = = 1\n");
        assert!(errs.len() >= 2, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (1, 6));
        assert!(errs[0].message.starts_with("TOML syntax: "));
    }
}
