//! `[[sink]]` entries of the policy file, typed.
//!
//! ```toml
//! [[sink]]
//! name = "splunk"                          # also the spool directory name
//! url = "https://splunk.example:8088/services/collector/event"
//! format = "splunk_hec"                    # webhook_json_array | ndjson | splunk_hec |
//!                                          # elasticsearch_bulk | loki
//! auth_header = "env:SPLUNK_HEC_AUTH"      # the Authorization value, or env:VAR holding it
//! gzip = true
//! batch_size = 500                         # events per POST at most
//! flush_interval_ms = 1000                 # a smaller batch waits at most this long
//! events = ["access", "alert"]             # default: every kind
//! index = "botgate"                        # Splunk index / Elasticsearch index
//! ```

use serde::Deserialize;

use crate::audit::EventKind;

/// A `[[sink]]` entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[sink]] {which}: {message}")]
pub struct SinkConfigError {
    /// `"splunk"` (its name) or `#2` (its position) when it has none.
    pub which: String,
    pub message: String,
}

/// Wire format of the POSTed batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// One JSON array of events (generic webhook).
    WebhookJsonArray,
    /// One event per line.
    Ndjson,
    /// Splunk HTTP Event Collector: concatenated `{"time","source","sourcetype","event"}`.
    SplunkHec,
    /// Elasticsearch / OpenSearch `_bulk`: `create` with `_id` = ray id (idempotent retries).
    ElasticsearchBulk,
    /// Grafana Loki push API: streams labelled by event kind.
    Loki,
}

/// One sink. `Debug` never shows `auth_header` (it may be a literal secret).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub name: String,
    pub url: String,
    pub format: SinkFormat,
    /// The `Authorization` header value, or `env:VAR` to read it from the environment.
    #[serde(default)]
    pub auth_header: Option<String>,
    #[serde(default)]
    pub gzip: bool,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// First retry delay; doubles per failed attempt up to `retry_max_ms`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Spool size at which new events are dropped (and counted) instead of spooled.
    #[serde(default = "default_max_spool_mb")]
    pub max_spool_mb: u64,
    /// Event kinds to send (default: all).
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    /// Splunk `index` / Elasticsearch index (default `botgate-audit`).
    #[serde(default)]
    pub index: Option<String>,
}

fn default_batch_size() -> usize {
    500
}
fn default_flush_interval_ms() -> u64 {
    1000
}
fn default_retry_initial_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    60_000
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_spool_mb() -> u64 {
    1024
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = self.auth_header.as_deref().map(|a| {
            if a.starts_with("env:") {
                a
            } else {
                "<redacted>"
            }
        });
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("format", &self.format)
            .field("auth_header", &auth)
            .field("gzip", &self.gzip)
            .field("batch_size", &self.batch_size)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl SinkConfig {
    /// A sink with defaults for everything but the three required fields.
    pub fn new(name: &str, url: &str, format: SinkFormat) -> Self {
        Self {
            name: name.to_string(),
            url: url.to_string(),
            format,
            auth_header: None,
            gzip: false,
            batch_size: default_batch_size(),
            flush_interval_ms: default_flush_interval_ms(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            timeout_ms: default_timeout_ms(),
            max_spool_mb: default_max_spool_mb(),
            events: None,
            index: None,
        }
    }

    /// Parse every `[[sink]]` table; names must be unique (each has its own spool).
    pub fn parse_all(tables: &[toml::Table]) -> Result<Vec<SinkConfig>, SinkConfigError> {
        let mut out: Vec<SinkConfig> = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let which = t
                .get("name")
                .and_then(|n| n.as_str())
                .map_or_else(|| format!("#{}", i + 1), |n| format!("{n:?}"));
            let cfg: SinkConfig =
                toml::Value::Table(t.clone())
                    .try_into()
                    .map_err(|e: toml::de::Error| SinkConfigError {
                        which: which.clone(),
                        message: e.message().trim().to_string(),
                    })?;
            cfg.validate().map_err(|message| SinkConfigError {
                which: which.clone(),
                message,
            })?;
            if out.iter().any(|o| o.name == cfg.name) {
                return Err(SinkConfigError {
                    which,
                    message: "another [[sink]] has the same name".into(),
                });
            }
            out.push(cfg);
        }
        Ok(out)
    }

    /// Relations serde cannot check.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(
                "name must be 1-64 letters, digits, '-' or '_' (it names the spool directory)"
                    .into(),
            );
        }
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("url {:?} is not a valid URL: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url {:?} must be http:// or https://", self.url));
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return Err("batch_size must be between 1 and 100000".into());
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err("retry_initial_ms must be > 0 and retry_max_ms >= retry_initial_ms".into());
        }
        if self.timeout_ms == 0 || self.max_spool_mb == 0 {
            return Err("timeout_ms and max_spool_mb must be > 0".into());
        }
        if let Some(a) = &self.auth_header
            && let Some(var) = a.strip_prefix("env:")
            && var.is_empty()
        {
            return Err(
                "auth_header = \"env:\" needs a variable name, e.g. \"env:SPLUNK_HEC_AUTH\"".into(),
            );
        }
        Ok(())
    }

    /// The Authorization value, reading `env:VAR` now.
    pub fn resolve_auth(&self) -> Result<Option<String>, SinkConfigError> {
        match self.auth_header.as_deref() {
            None => Ok(None),
            Some(a) => match a.strip_prefix("env:") {
                None => Ok(Some(a.to_string())),
                Some(var) => std::env::var(var).map(Some).map_err(|_| SinkConfigError {
                    which: format!("{:?}", self.name),
                    message: format!(
                        "auth_header names the environment variable {var}, which is not set"
                    ),
                }),
            },
        }
    }

    /// Whether events of `kind` go to this sink.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<SinkConfig>, SinkConfigError> {
        let t: toml::Table = s.parse().unwrap();
        let sinks: Vec<toml::Table> = t["sink"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_table().unwrap().clone())
            .collect();
        SinkConfig::parse_all(&sinks)
    }

    #[test]
    fn parses_with_defaults() {
        let cfgs = parse(
            r#"
            [[sink]]
            name = "siem"
            url = "http://127.0.0.1:9/ingest"
            format = "ndjson"
            [[sink]]
            name = "splunk"
            url = "https://splunk:8088/services/collector/event"
            format = "splunk_hec"
            auth_header = "Splunk 0000-secret"
            gzip = true
            events = ["alert"]
            "#,
        )
        .unwrap();
        assert_eq!(cfgs[0].batch_size, 500);
        assert!(cfgs[0].wants(EventKind::Access));
        assert!(
            cfgs[1].gzip && !cfgs[1].wants(EventKind::Access) && cfgs[1].wants(EventKind::Alert)
        );
        assert!(
            !format!("{:?}", cfgs[1]).contains("0000-secret"),
            "Debug redacts the auth header"
        );
    }

    #[test]
    fn errors_name_the_sink_and_field() {
        let e =
            parse("[[sink]]\nname = \"a\"\nurl = \"ftp://x\"\nformat = \"ndjson\"").unwrap_err();
        assert_eq!(e.which, "\"a\"");
        assert!(e.message.contains("http://"), "{e}");
        let e = parse("[[sink]]\nurl = \"http://x\"\nformat = \"ndjson\"").unwrap_err();
        assert!(
            e.to_string().starts_with("[[sink]] #1:") && e.message.contains("name"),
            "{e}"
        );
        let e = parse("[[sink]]\nname = \"a\"\nurl = \"http://x\"\nformat = \"xml\"").unwrap_err();
        assert!(e.message.contains("xml"), "{e}");
        let e = parse("[[sink]]\nname = \"a\"\nurl = \"http://x\"\nformat = \"loki\"\nbatch = 5")
            .unwrap_err();
        assert!(e.message.contains("batch"), "{e}");
        let twice = "[[sink]]\nname = \"a\"\nurl = \"http://x\"\nformat = \"loki\"\n";
        assert!(
            parse(&format!("{twice}{twice}"))
                .unwrap_err()
                .message
                .contains("same name")
        );
        let e =
            parse("[[sink]]\nname = \"../x\"\nurl = \"http://x\"\nformat = \"loki\"").unwrap_err();
        assert!(e.message.contains("spool directory"), "{e}");
    }

    #[test]
    fn auth_from_environment() {
        let mut cfg = SinkConfig::new("a", "http://x", SinkFormat::Ndjson);
        cfg.auth_header = Some("env:BOTGATE_TEST_SURELY_UNSET_VAR".into());
        let e = cfg.resolve_auth().unwrap_err();
        assert!(e.message.contains("BOTGATE_TEST_SURELY_UNSET_VAR"));
        cfg.auth_header = Some("env:PATH".into());
        assert_eq!(cfg.resolve_auth().unwrap(), std::env::var("PATH").ok());
    }
}
