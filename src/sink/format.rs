//! Request bodies for each sink format, built from spooled JSON lines (our audit events).

use std::collections::BTreeMap;
use std::io::Write;

use chrono::DateTime;
use serde_json::{Value, json};

use super::config::SinkFormat;

/// Index used by `elasticsearch_bulk` when the sink names none.
pub(crate) const DEFAULT_INDEX: &str = "botgate-audit";

/// A request body ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// Lines that were not valid JSON and were left out (never expected: we wrote them).
    pub skipped: usize,
}

/// Encode spooled lines as `format` (and gzip them when asked).
pub(crate) fn encode(
    format: SinkFormat,
    lines: &[String],
    index: Option<&str>,
    gzip: bool,
) -> std::io::Result<Body> {
    let mut skipped = 0;
    let parsed: Vec<(Value, &String)> = lines
        .iter()
        .filter_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) => Some((v, l)),
            Err(_) => {
                skipped += 1;
                None
            }
        })
        .collect();
    let events: Vec<&Value> = parsed.iter().map(|(v, _)| v).collect();
    let (mut bytes, content_type) = match format {
        SinkFormat::WebhookJsonArray => (serde_json::to_vec(&events)?, "application/json"),
        SinkFormat::Ndjson => (ndjson(events.iter().copied()), "application/x-ndjson"),
        SinkFormat::SplunkHec => {
            let wrapped = events.iter().map(|ev| {
                let mut w = json!({
                    "time": unix_secs(ev),
                    "source": "botgate",
                    "sourcetype": format!("botgate:{}", ev["event"].as_str().unwrap_or("event")),
                    "event": ev,
                });
                if let Some(i) = index {
                    w["index"] = json!(i);
                }
                w
            });
            (
                ndjson(wrapped.collect::<Vec<_>>().iter()),
                "application/json",
            )
        }
        SinkFormat::ElasticsearchBulk => {
            let index = index.unwrap_or(DEFAULT_INDEX);
            let mut out = Vec::new();
            for ev in events {
                // `create` with the ray id as `_id`: a retried batch cannot index an event twice.
                let action = json!({ "create": { "_index": index, "_id": ev["ray_id"] } });
                let mut doc = ev.clone();
                doc["@timestamp"] = ev["created_at"].clone();
                out.extend(ndjson([action, doc].iter()));
            }
            (out, "application/x-ndjson")
        }
        SinkFormat::Loki => {
            let mut streams: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
            for (ev, line) in &parsed {
                let kind = ev["event"].as_str().unwrap_or("event").to_string();
                streams
                    .entry(kind)
                    .or_default()
                    .push((unix_nanos(ev), (*line).clone()));
            }
            let streams: Vec<Value> = streams
                .into_iter()
                .map(|(kind, mut values)| {
                    values.sort_by_key(|(t, _)| *t);
                    let values: Vec<Value> = values
                        .into_iter()
                        .map(|(t, l)| json!([t.to_string(), l]))
                        .collect();
                    json!({ "stream": { "job": "botgate", "event": kind }, "values": values })
                })
                .collect();
            (
                serde_json::to_vec(&json!({ "streams": streams }))?,
                "application/json",
            )
        }
    };
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes)?;
        bytes = enc.finish()?;
    }
    Ok(Body {
        bytes,
        content_type,
        skipped,
    })
}

fn ndjson<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        // Serialising a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, v);
        out.push(b'\n');
    }
    out
}

fn created_at(ev: &Value) -> Option<DateTime<chrono::FixedOffset>> {
    DateTime::parse_from_rfc3339(ev["created_at"].as_str()?).ok()
}

fn unix_secs(ev: &Value) -> f64 {
    created_at(ev).map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
}

fn unix_nanos(ev: &Value) -> i64 {
    created_at(ev)
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AccessEvent, EventKind};

    fn lines() -> Vec<String> {
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:00:00.250Z")
            .unwrap()
            .to_utc();
        let mut a = AccessEvent::empty(EventKind::Access, at, "ray1".into());
        a.decision = "allow".into();
        let b = AccessEvent::empty(
            EventKind::Alert,
            at + chrono::Duration::seconds(1),
            "ray2".into(),
        );
        vec![a.to_json_line(), b.to_json_line(), "not json".into()]
    }

    fn text(b: &Body) -> String {
        String::from_utf8(b.bytes.clone()).unwrap()
    }

    #[test]
    fn webhook_array_and_ndjson() {
        let b = encode(SinkFormat::WebhookJsonArray, &lines(), None, false).unwrap();
        let v: Vec<Value> = serde_json::from_slice(&b.bytes).unwrap();
        assert_eq!(
            (v.len(), b.skipped, b.content_type),
            (2, 1, "application/json")
        );
        let b = encode(SinkFormat::Ndjson, &lines(), None, false).unwrap();
        assert_eq!(text(&b).lines().count(), 2);
        assert_eq!(b.content_type, "application/x-ndjson");
    }

    #[test]
    fn splunk_hec_events() {
        let b = encode(SinkFormat::SplunkHec, &lines(), Some("sec"), false).unwrap();
        let first: Value = serde_json::from_str(text(&b).lines().next().unwrap()).unwrap();
        assert_eq!(first["time"], 1_795_867_200.25);
        assert_eq!(first["sourcetype"], "botgate:access");
        assert_eq!(first["index"], "sec");
        assert_eq!(first["event"]["ray_id"], "ray1");
    }

    #[test]
    fn elasticsearch_bulk_is_idempotent_by_ray_id() {
        let b = encode(SinkFormat::ElasticsearchBulk, &lines(), None, false).unwrap();
        let l: Vec<Value> = text(&b)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(l.len(), 4);
        assert_eq!(
            l[0],
            json!({ "create": { "_index": DEFAULT_INDEX, "_id": "ray1" } })
        );
        assert_eq!(l[1]["@timestamp"], "2026-11-28T12:00:00.250Z");
    }

    #[test]
    fn loki_streams_by_event_kind() {
        let b = encode(SinkFormat::Loki, &lines()[..2], None, false).unwrap();
        let v: Value = serde_json::from_slice(&b.bytes).unwrap();
        let streams = v["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!(
            streams[0]["stream"],
            json!({ "job": "botgate", "event": "access" })
        );
        assert_eq!(streams[0]["values"][0][0], "1795867200250000000");
        assert_eq!(streams[0]["values"][0][1], lines()[0]);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let plain = encode(SinkFormat::Ndjson, &lines(), None, false).unwrap();
        let gz = encode(SinkFormat::Ndjson, &lines(), None, true).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz.bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain.bytes);
    }
}
