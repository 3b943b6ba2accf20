//! One JSON object per line (contract). Absent values are `null`, never invented; a secret never
//! appears in any field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `access` for a request or rejected handshake, `admin` for a change, `alert` for a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Access,
    Admin,
    Alert,
}

/// How the client identified itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMethod {
    ServiceToken,
    Mtls,
    /// An OIDC workload token (`Authorization: Bearer` or `cf-access-token`).
    Oidc,
    None,
}

impl ConnectionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionMethod::ServiceToken => "service_token",
            ConnectionMethod::Mtls => "mtls",
            ConnectionMethod::Oidc => "oidc",
            ConnectionMethod::None => "none",
        }
    }
}

/// The audit event. Field names and meanings are a contract with users' tooling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessEvent {
    pub event: EventKind,
    #[serde(with = "rfc3339_ms")]
    pub created_at: DateTime<Utc>,
    pub ray_id: String,
    pub app_name: Option<String>,
    pub allowed: bool,
    /// `allow`, `deny`, `bypass`, `error`; for admin/alert events the action or rule name.
    pub decision: String,
    pub status: Option<u16>,
    pub policy_name: Option<String>,
    pub deny_reason: Option<String>,
    pub connection_method: ConnectionMethod,
    pub service_token_id: Option<String>,
    pub service_token_name: Option<String>,
    /// Which secret of the token was presented (1, 2, … per `token rotate-secret`); `null`
    /// without a token or when the secret was not the token's.
    #[serde(default)]
    pub secret_version: Option<u32>,
    pub cert_common_name: Option<String>,
    pub cert_serial: Option<String>,
    pub cert_fingerprint_sha256: Option<String>,
    pub cert_issuer: Option<String>,
    /// The certificate's subject alternative names in openssl's notation (`DNS:…`, `URI:…`,
    /// `email:…`, `IP:…`); `null` without a certificate or without SANs.
    pub cert_san: Option<Vec<String>>,
    /// The certificate's SPIFFE ID (its only URI SAN, when that is one); else `null`.
    pub spiffe_id: Option<String>,
    /// An OIDC workload's identity, `oidc:<issuer>/<sub>`; `null` without a verified token.
    #[serde(default)]
    pub oidc_identity: Option<String>,
    /// The verified token's claims (repository, ref, workflow, run id … as the issuer sent
    /// them; not `aud`/`exp`/`nbf`/`iat`); `null` without a verified token.
    #[serde(default)]
    pub oidc_claims: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    pub ip_address: Option<String>,
    pub country: Option<String>,
    pub user_agent: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub latency_ms: Option<f64>,
    /// The gate that wrote the event (`[gate] node`, default its host name); `null` on admin
    /// events a CLI appended while no gate held the audit file.
    #[serde(default)]
    pub node: Option<std::sync::Arc<str>>,
    /// Extra structured detail for admin and alert events (absent on access events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// The whole client certificate as the gate parsed it (validity, key type, issuer DN, DER),
    /// for the inventory of seen certificates. In process only: never written to the log.
    #[serde(skip)]
    pub peer_cert: Option<std::sync::Arc<crate::pki::CertInfo>>,
}

impl AccessEvent {
    /// An event of `kind` at `at` with every optional field `null`.
    pub fn empty(kind: EventKind, at: DateTime<Utc>, ray_id: String) -> Self {
        Self {
            event: kind,
            created_at: at,
            ray_id,
            app_name: None,
            allowed: false,
            decision: String::new(),
            status: None,
            policy_name: None,
            deny_reason: None,
            connection_method: ConnectionMethod::None,
            service_token_id: None,
            service_token_name: None,
            secret_version: None,
            cert_common_name: None,
            cert_serial: None,
            cert_fingerprint_sha256: None,
            cert_issuer: None,
            cert_san: None,
            spiffe_id: None,
            oidc_identity: None,
            oidc_claims: None,
            ip_address: None,
            country: None,
            user_agent: None,
            method: None,
            host: None,
            path: None,
            latency_ms: None,
            node: None,
            details: None,
            peer_cert: None,
        }
    }

    /// An `admin` event: `action` on `target`, with details.
    pub fn admin(
        at: DateTime<Utc>,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Self {
        let mut e = Self::empty(EventKind::Admin, at, new_ray_id());
        e.allowed = true;
        e.decision = action.to_string();
        e.policy_name = None;
        e.details = Some(
            serde_json::json!({ "target": target, "actor": crate::store::actor(), "details": details }),
        );
        e
    }

    /// The credential this event is about: token name, else OIDC workload, else cert CN.
    pub fn identity(&self) -> Option<&str> {
        self.service_token_name
            .as_deref()
            .or(self.oidc_identity.as_deref())
            .or(self.cert_common_name.as_deref())
    }

    /// One JSONL line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising a struct of plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A fresh ray id: 16 lowercase hex characters.
pub fn new_ray_id() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// RFC 3339 UTC with milliseconds, the one timestamp form of audit lines and alerts.
pub(crate) mod rfc3339_ms {
    use chrono::format::{Fixed, Item, Numeric, Pad};
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// `to_rfc3339_opts(SecondsFormat::Millis, true)` as format items: `2026-11-28T12:00:00.123Z`.
    const ITEMS: [Item<'static>; 13] = [
        Item::Numeric(Numeric::Year, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Month, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Day, Pad::Zero),
        Item::Literal("T"),
        Item::Numeric(Numeric::Hour, Pad::Zero),
        Item::Literal(":"),
        Item::Numeric(Numeric::Minute, Pad::Zero),
        Item::Literal(":"),
        Item::Numeric(Numeric::Second, Pad::Zero),
        Item::Fixed(Fixed::Nanosecond3),
        Item::Literal("Z"),
    ];

    /// A fixed buffer on the stack: the timestamp is written without allocating.
    struct Buf {
        bytes: [u8; 40],
        len: usize,
    }

    impl std::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Buf {
            bytes: [0; 40],
            len: 0,
        };
        // Naive (UTC) time: formatting a `DateTime<Utc>` allocates the offset's name.
        let written = t
            .naive_utc()
            .format_with_items(ITEMS.iter())
            .write_to(&mut buf);
        match (written, std::str::from_utf8(&buf.bytes[..buf.len])) {
            (Ok(()), Ok(text)) => s.serialize_str(text),
            // Years beyond 9999 and the like: the allocating form.
            _ => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Time(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Time>::deserialize(d)?.map(|t| t.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_null_and_time_has_ms() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = AccessEvent::empty(EventKind::Access, at, "abc".into());
        let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(v["created_at"], "2026-11-28T12:00:00.123Z");
        assert!(v["service_token_name"].is_null());
        assert_eq!(v["connection_method"], "none");
        assert!(v.get("details").is_none());
        let back: AccessEvent = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(back, e);
    }

    /// Found by the audit_line fuzz target: serde_json's default float parser can land one ulp
    /// off, so a latency written and read back changed (`float_roundtrip` fixes it).
    #[test]
    fn a_latency_reads_back_to_the_same_number() {
        let mut e = AccessEvent::empty(EventKind::Access, Utc::now(), "abc".into());
        for ms in [
            1.1362275116276523e-8,
            2.2201838057111728e-13,
            1.079907802215119e-66,
        ] {
            e.latency_ms = Some(ms);
            e.details = Some(serde_json::json!({ "ratio": ms }));
            let line = e.to_json_line();
            let back: AccessEvent = serde_json::from_str(&line).unwrap();
            assert_eq!(back.latency_ms, Some(ms), "{line}");
            assert_eq!(back.to_json_line(), line);
        }
    }

    #[test]
    fn timestamps_are_written_exactly_as_rfc3339_with_millis() {
        use chrono::{SecondsFormat, TimeZone};
        let cases = [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(1_795_000_000, 999_999_999).unwrap(),
            Utc.timestamp_opt(1_795_000_000, 5_000_000).unwrap(),
            Utc.timestamp_opt(253_402_300_799, 1_000_000).unwrap(), // 9999-12-31T23:59:59.001
            Utc::now(),
        ];
        for at in cases {
            let e = AccessEvent::empty(EventKind::Access, at, "r".into());
            let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
            assert_eq!(
                v["created_at"],
                at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "{at:?}"
            );
        }
    }
}
