//! `[[oidc_issuer]]` parsed once, for validation (each problem on its key), compile and the gate.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;

use super::jwks::Alg;
use crate::config::model::OidcIssuerConfig;

/// Where an issuer's key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(String),
    /// `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    Discovery(String),
    File(PathBuf),
}

impl KeySource {
    pub fn describe(&self) -> String {
        match self {
            KeySource::Url(u) => u.clone(),
            KeySource::Discovery(u) => format!("discovery via {u}"),
            KeySource::File(p) => p.display().to_string(),
        }
    }
}

/// One issuer, ready for the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    pub name: Arc<str>,
    /// The `iss` its tokens carry (as written, compared exactly).
    pub issuer: String,
    pub source: KeySource,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Alg>,
    pub leeway: Duration,
    /// Cache lifetime when the key-set response names none.
    pub refresh: Duration,
    pub max_key_age: Duration,
}

/// An `[[oidc_issuer]]` value that cannot be used: the key it is under and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: &'static str,
    pub message: String,
    pub hint: &'static str,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.key, self.message, self.hint)
    }
}

/// The default algorithms: what GitHub, GitLab and Kubernetes sign with.
pub const DEFAULT_ALGORITHMS: [Alg; 2] = [Alg::RS256, Alg::ES256];
/// Key-set lifetimes are clamped to this range whatever the issuer says.
pub const REFRESH_RANGE: (i64, i64) = (60, 24 * 3600);

impl IssuerSettings {
    /// Parse one issuer (a relative `jwks_file` stays relative: it is read beside the policy
    /// file, see `fetch::key_set`).
    pub fn from_config(c: &OidcIssuerConfig) -> Result<Self, SettingError> {
        let err = |key, message: String, hint| SettingError { key, message, hint };
        let name = c.name.get_ref();
        if !valid_name(name) {
            return Err(err(
                "name",
                format!("{name:?} is not an issuer name"),
                "1 to 64 letters, digits, '.', '_' or '-', e.g. \"github\"",
            ));
        }
        let issuer = c.issuer.get_ref().clone();
        check_url(&issuer).map_err(|m| {
            err(
                "issuer",
                m,
                "write the iss its tokens carry, e.g. \"https://token.actions.githubusercontent.com\"",
            )
        })?;
        if c.discovery.as_ref().is_some_and(|d| !d.get_ref())
            && c.jwks_url.is_none()
            && c.jwks_file.is_none()
        {
            return Err(err(
                "discovery",
                "discovery is off and neither jwks_url nor jwks_file is set, so no key set can be found".into(),
                "set jwks_url = \"https://…/jwks\" or jwks_file = \"PATH\", or remove discovery = false",
            ));
        }
        let source = match (&c.jwks_url, &c.jwks_file, &c.discovery) {
            (Some(_), Some(_), _) => {
                return Err(err(
                    "jwks_file",
                    "set jwks_url or jwks_file, not both".into(),
                    "jwks_file is for issuers whose keys are published out of band",
                ));
            }
            (Some(_), _, Some(d)) | (_, Some(_), Some(d)) if *d.get_ref() => {
                return Err(err(
                    "discovery",
                    "discovery = true finds the key set itself; it cannot be combined with jwks_url or jwks_file".into(),
                    "remove one of them",
                ));
            }
            (Some(u), None, _) => {
                check_url(u.get_ref()).map_err(|m| {
                    err(
                        "jwks_url",
                        m,
                        "e.g. \"https://token.actions.githubusercontent.com/.well-known/jwks\"",
                    )
                })?;
                KeySource::Url(u.get_ref().clone())
            }
            (None, Some(f), _) => KeySource::File(f.get_ref().clone()),
            (None, None, _) => KeySource::Discovery(format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            )),
        };
        let audiences = c.audiences.get_ref().clone();
        if audiences.is_empty() || audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(err(
                "audiences",
                "audiences is empty (or has an empty entry): a token for any other service would be accepted".into(),
                "name what your jobs request, e.g. audiences = [\"https://api.example.com\"]",
            ));
        }
        let algorithms = match &c.algorithms {
            None => DEFAULT_ALGORITHMS.to_vec(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(err(
                        "algorithms",
                        "algorithms is empty, so no token can verify".into(),
                        "leave it out for RS256 and ES256",
                    ));
                }
                let mut out = Vec::new();
                for a in list.get_ref() {
                    let alg = Alg::parse_config(a).map_err(|m| {
                        err("algorithms", m, "the default is [\"RS256\", \"ES256\"]")
                    })?;
                    if !out.contains(&alg) {
                        out.push(alg);
                    }
                }
                out
            }
        };
        let duration = |key: &'static str,
                        v: &Option<toml::Spanned<String>>,
                        default: Duration,
                        range: (i64, i64),
                        hint: &'static str| {
            let Some(v) = v else { return Ok(default) };
            let d =
                crate::duration::parse(v.get_ref()).map_err(|e| err(key, e.to_string(), hint))?;
            if d.num_seconds() < range.0 || d.num_seconds() > range.1 {
                return Err(err(
                    key,
                    format!(
                        "{} is out of range ({} to {})",
                        v.get_ref(),
                        crate::duration::countdown(Duration::seconds(range.0)),
                        crate::duration::countdown(Duration::seconds(range.1))
                    ),
                    hint,
                ));
            }
            Ok(d)
        };
        // `leeway = "0s"` is refused by the duration parser (zero), which is right: clocks skew.
        let leeway = duration(
            "leeway",
            &c.leeway,
            Duration::seconds(60),
            (1, 600),
            "the default is 60s",
        )?;
        let refresh = duration(
            "refresh",
            &c.refresh,
            Duration::hours(1),
            REFRESH_RANGE,
            "the default is 1h",
        )?;
        let max_key_age = duration(
            "max_key_age",
            &c.max_key_age,
            Duration::hours(24),
            (300, 90 * 86_400),
            "the default is 24h",
        )?;
        Ok(Self {
            name: name.as_str().into(),
            issuer,
            source,
            audiences,
            algorithms,
            leeway,
            refresh,
            max_key_age,
        })
    }
}

/// `https://HOST…`, or `http://` to a loopback address (tests, the demo, a local issuer): the
/// one rule for issuer, `jwks_url` and a discovered `jwks_uri`.
pub(crate) fn check_url(text: &str) -> Result<(), String> {
    let uri: hyper::Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(format!(
            "{text:?} is plain http: key sets must come over https (http only to a loopback address)"
        )),
        _ => Err(format!("{text:?} is not an https:// URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
