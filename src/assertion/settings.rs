//! `[gate] issuer` and `assertion_*`: parsed once, for the gate, `policy check` and `keys`.

use chrono::Duration;

use super::keys::Alg;
use super::lifecycle::KeyPolicy;
use crate::config::GateSection;

/// Shortest and longest assertion lifetime.
pub const TTL_RANGE: (i64, i64) = (10, 24 * 3600);

/// How the gate signs assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `iss`: `[gate] issuer`, else `https://<tls_listen>` or `http://<listen>`.
    pub issuer: String,
    /// Lifetime of one assertion (`exp - iat`).
    pub ttl: Duration,
    pub keys: KeyPolicy,
}

/// A `[gate]` value that cannot be used: the key it is under and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: &'static str,
    pub message: String,
    pub hint: &'static str,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[gate] {}: {} ({})", self.key, self.message, self.hint)
    }
}

impl Settings {
    pub fn from_gate(g: &GateSection) -> Result<Self, SettingError> {
        let err = |key, message: String, hint| SettingError { key, message, hint };
        let duration = |key: &'static str, value: &Option<toml::Spanned<String>>, hint| {
            value
                .as_ref()
                .map(|v| {
                    crate::duration::parse(v.get_ref()).map_err(|e| err(key, e.to_string(), hint))
                })
                .transpose()
        };
        let issuer = match &g.issuer {
            Some(i) => {
                let text = i.get_ref().trim_end_matches('/');
                let ok = text
                    .parse::<hyper::Uri>()
                    .ok()
                    .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
                    .is_some_and(|u| u.host().is_some());
                if !ok {
                    return Err(err(
                        "issuer",
                        format!("{:?} is not an http(s) URL", i.get_ref()),
                        "write the URL origins reach the gate at, e.g. \"https://gate.example.com\"; its /cdn-cgi/access/certs serves the key set",
                    ));
                }
                text.to_string()
            }
            None => match &g.tls_listen {
                Some(a) => format!("https://{}", a.get_ref()),
                None => format!("http://{}", g.listen.get_ref()),
            },
        };
        let alg = match &g.assertion_alg {
            Some(a) => Alg::parse(a.get_ref()).map_err(|m| {
                err(
                    "assertion_alg",
                    m,
                    "RS256 is what the hosted product signs with",
                )
            })?,
            None => Alg::Rs256,
        };
        let defaults = KeyPolicy::default();
        let ttl = duration("assertion_ttl", &g.assertion_ttl, "the default is 5m")?
            .unwrap_or(Duration::minutes(5));
        if ttl < Duration::seconds(TTL_RANGE.0) || ttl > Duration::seconds(TTL_RANGE.1) {
            return Err(err(
                "assertion_ttl",
                format!(
                    "{} is out of range (10s to 24h)",
                    g.assertion_ttl
                        .as_ref()
                        .map(|v| v.get_ref().as_str())
                        .unwrap_or_default()
                ),
                "the default is 5m; assertions are re-signed before they expire",
            ));
        }
        let rotation = match &g.assertion_key_rotation {
            Some(v) if v.get_ref() == "off" => None,
            other => Some(
                duration(
                    "assertion_key_rotation",
                    other,
                    "write a period such as 6w (the default) or \"off\" to rotate only with `botgate keys rotate`",
                )?
                .unwrap_or(defaults.rotation.unwrap_or_default()),
            ),
        };
        let publish_ahead = duration(
            "assertion_key_publish_ahead",
            &g.assertion_key_publish_ahead,
            "the default is 1h: long enough for verifiers to refresh their cached key set",
        )?
        .unwrap_or(defaults.publish_ahead);
        let overlap = duration(
            "assertion_key_overlap",
            &g.assertion_key_overlap,
            "the default is 7d (the hosted product's overlap)",
        )?
        .unwrap_or(defaults.overlap);
        Ok(Self {
            issuer,
            ttl,
            keys: KeyPolicy {
                alg,
                rotation,
                publish_ahead,
                overlap,
            },
        })
    }
}
