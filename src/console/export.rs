//! What a view shows, as data: one record per row of the current view's table, in the rows the
//! view draws (`rows`: after filter and sort) and with full values (RFC 3339 times, whole ids)
//! rather than the shortened cells on screen. `:export FILE` writes them as CSV or JSON (by the
//! file's extension) and `Y` copies the selected one as JSON; both read `table`, so they agree.
//! The Log view's columns are the audit event's own field names (the contract), taken from its
//! serde form. Pure: the runner writes the file (`app::Effect::WriteFile`).

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::alerts::AlertState;
use super::app::{AppState, ViewId};
use super::rows;

/// The columns of the Log view's export: the audit event's fields, in the contract's order.
const EVENT_COLUMNS: &[&str] = &[
    "event",
    "created_at",
    "ray_id",
    "app_name",
    "allowed",
    "decision",
    "status",
    "policy_name",
    "deny_reason",
    "connection_method",
    "service_token_id",
    "service_token_name",
    "cert_common_name",
    "cert_serial",
    "cert_fingerprint_sha256",
    "cert_issuer",
    "cert_san",
    "spiffe_id",
    "ip_address",
    "country",
    "user_agent",
    "method",
    "host",
    "path",
    "latency_ms",
];

/// A view's rows as records: `rows[i][j]` is column `columns[j]` of row `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<Value>>,
}

/// The file formats `:export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Why `:export FILE` cannot write FILE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error(":export needs a file name ending in .csv or .json, e.g. :export denied.csv")]
    NoExtension,
    #[error(":export writes .csv or .json, not .{0} (the format follows the file's extension)")]
    UnknownExtension(String),
}

impl Format {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn of(path: &Path) -> Result<Self, ExportError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .ok_or(ExportError::NoExtension)?;
        match ext.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(ExportError::UnknownExtension(ext.to_string())),
        }
    }
}

impl Table {
    /// The table as `format`: CSV with a header line (RFC 4180 quoting), or a JSON array of
    /// objects whose keys are in column order.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => self.csv(),
            Format::Json => {
                let objects: Vec<String> = (0..self.rows.len()).map(|i| self.json_row(i)).collect();
                if objects.is_empty() {
                    "[]\n".to_string()
                } else {
                    format!("[\n{}\n]\n", objects.join(",\n"))
                }
            }
        }
    }

    /// Row `i` as one JSON object, keys in column order (empty object when out of range).
    pub fn json_row(&self, i: usize) -> String {
        let Some(row) = self.rows.get(i) else {
            return "{}".into();
        };
        let fields: Vec<String> = self
            .columns
            .iter()
            .zip(row)
            .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    fn csv(&self) -> String {
        let mut out = self.columns.join(",");
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(csv_cell).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

/// One CSV field: strings bare, lists joined with `;`, null empty; quoted when needed.
fn csv_cell(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";"),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn time(t: DateTime<Utc>) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, time)
}

fn strings<'a>(v: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(v.into_iter().map(Value::from).collect())
}

/// The rows of `view` as drawn now (filter and sort applied), with full values.
pub fn table(s: &AppState, view: ViewId) -> Table {
    match view {
        ViewId::Traffic => Table {
            columns: &[
                "identity",
                "connection_method",
                "req_per_min",
                "deny_pct",
                "total",
                "denied",
                "first_seen",
                "last_seen",
                "countries",
                "apps",
            ],
            rows: rows::identities(s)
                .into_iter()
                .map(|i| {
                    vec![
                        Value::from(i.name.as_str()),
                        Value::from(i.method.as_str()),
                        Value::from(i.per_minute(s.shown_end_sec())),
                        Value::from((i.deny_pct() * 10.0).round() / 10.0),
                        Value::from(i.total),
                        Value::from(i.denied),
                        time(i.first_seen),
                        time(i.last_seen),
                        strings(i.countries.iter()),
                        strings(i.apps.iter()),
                    ]
                })
                .collect(),
        },
        ViewId::Tokens => Table {
            columns: &[
                "name",
                "client_id",
                "status",
                "created_at",
                "expires_at",
                "last_seen",
                "rotation_due",
                "policies",
            ],
            rows: rows::tokens(s)
                .into_iter()
                .map(|t| {
                    vec![
                        Value::from(t.name.as_str()),
                        Value::from(t.client_id.as_str()),
                        Value::from(t.status(s.now).label()),
                        time(t.created_at),
                        time(t.expires_at),
                        opt_time(rows::last_seen(s, &t.name, t.last_seen_at)),
                        time(t.rotation_due()),
                        strings(t.policies.iter().map(String::as_str)),
                    ]
                })
                .collect(),
        },
        ViewId::Certs => Table {
            columns: &[
                "common_name",
                "status",
                "issuer",
                "serial",
                "fingerprint_sha256",
                "not_after",
                "key_type",
                "last_seen",
                "rotation_due",
                "source",
            ],
            rows: rows::certs(s)
                .into_iter()
                .map(|c| {
                    vec![
                        Value::from(c.common_name.as_str()),
                        Value::from(c.status(s.now).label()),
                        Value::from(c.issuer.as_str()),
                        Value::from(c.serial.as_str()),
                        Value::from(c.fingerprint_sha256.as_str()),
                        time(c.not_after),
                        Value::from(c.key_type.as_str()),
                        opt_time(rows::last_seen(s, &c.common_name, c.last_seen_at)),
                        time(c.rotation_due()),
                        Value::from(c.source.as_str()),
                    ]
                })
                .collect(),
        },
        ViewId::Alerts => Table {
            columns: &[
                "id",
                "rule",
                "severity",
                "state",
                "credential",
                "title",
                "count",
                "first_seen",
                "last_seen",
                "evidence",
            ],
            rows: rows::alerts(s)
                .into_iter()
                .map(|a| {
                    vec![
                        Value::from(a.id.as_str()),
                        Value::from(a.rule.as_str()),
                        Value::from(a.severity.label()),
                        Value::from(if a.state == AlertState::Open {
                            "open"
                        } else {
                            "resolved"
                        }),
                        a.credential.as_deref().map_or(Value::Null, Value::from),
                        Value::from(a.title.as_str()),
                        Value::from(a.count),
                        time(a.first_seen),
                        time(a.last_seen),
                        Value::from(a.evidence_text()),
                    ]
                })
                .collect(),
        },
        ViewId::Policies => Table {
            columns: &["app", "hostnames", "order", "policy", "action", "admits"],
            rows: rows::policy_lines(s)
                .into_iter()
                .map(|l| {
                    vec![
                        Value::from(l.app.name.as_str()),
                        strings(l.app.hostnames.iter().map(String::as_str)),
                        Value::from(l.order),
                        l.policy
                            .map_or(Value::Null, |p| Value::from(p.name.as_str())),
                        l.policy
                            .map_or(Value::Null, |p| Value::from(p.action.as_str())),
                        l.policy.map_or(Value::Null, |p| {
                            strings(p.admits.iter().map(String::as_str))
                        }),
                    ]
                })
                .collect(),
        },
        ViewId::Rotations => Table {
            columns: &[
                "id",
                "kind",
                "old",
                "new",
                "state",
                "created_at",
                "updated_at",
            ],
            rows: s
                .rotations
                .iter()
                .map(|r| {
                    let r = &r.view;
                    vec![
                        Value::from(r.id.as_str()),
                        Value::from(r.kind.as_str()),
                        Value::from(r.old.as_str()),
                        r.new.as_deref().map_or(Value::Null, Value::from),
                        Value::from(r.state.as_str()),
                        time(r.created_at),
                        time(r.updated_at),
                    ]
                })
                .collect(),
        },
        ViewId::Issuers => Table {
            columns: &[
                "name",
                "issuer",
                "source",
                "fetched_at",
                "stale",
                "kids",
                "last_attempt",
                "last_error",
                "failures",
                "verified",
                "refused",
            ],
            rows: s
                .issuers
                .iter()
                .map(|r| {
                    let v = &r.view;
                    let opt = |o: &Option<String>| o.as_deref().map_or(Value::Null, Value::from);
                    vec![
                        Value::from(v.name.as_str()),
                        Value::from(v.issuer.as_str()),
                        Value::from(v.source.as_str()),
                        opt(&v.fetched_at),
                        Value::from(v.stale),
                        strings(v.kids.iter().map(String::as_str)),
                        opt(&v.last_attempt),
                        opt(&v.last_error),
                        Value::from(v.failures),
                        r.counts.map_or(Value::Null, |c| Value::from(c.verified)),
                        r.counts.map_or(Value::Null, |c| Value::from(c.refused)),
                    ]
                })
                .collect(),
        },
        ViewId::Log => Table {
            columns: EVENT_COLUMNS,
            rows: (0..rows::log_len(s))
                .filter_map(|i| rows::log_event(s, i))
                .map(|e| {
                    let v = serde_json::to_value(e.to_event()).unwrap_or(Value::Null);
                    EVENT_COLUMNS
                        .iter()
                        .map(|c| v.get(c).cloned().unwrap_or(Value::Null))
                        .collect()
                })
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: &["name", "n", "tags", "none"],
            rows: vec![
                vec![
                    Value::from("plain"),
                    Value::from(3),
                    strings(["a", "b"]),
                    Value::Null,
                ],
                vec![
                    Value::from("has, comma and \"quotes\""),
                    Value::from(1.5),
                    strings([]),
                    Value::Null,
                ],
            ],
        }
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(
            table().render(Format::Csv),
            "name,n,tags,none\nplain,3,a;b,\n\"has, comma and \"\"quotes\"\"\",1.5,,\n"
        );
    }

    #[test]
    fn json_keeps_column_order_and_parses_back() {
        let text = table().render(Format::Json);
        assert!(
            text.starts_with("[\n{\"name\":\"plain\",\"n\":3,"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[1]["name"], "has, comma and \"quotes\"");
        assert_eq!(v[0]["tags"], serde_json::json!(["a", "b"]));
        let empty = Table {
            columns: &["x"],
            rows: Vec::new(),
        };
        assert_eq!(empty.render(Format::Json), "[]\n");
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.CSV")), Ok(Format::Csv));
        assert_eq!(Format::of(Path::new("x.json")), Ok(Format::Json));
        assert_eq!(Format::of(Path::new("x")), Err(ExportError::NoExtension));
        assert_eq!(
            Format::of(Path::new("x.txt")),
            Err(ExportError::UnknownExtension("txt".into()))
        );
    }
}
