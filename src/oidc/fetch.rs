//! Getting an issuer's key set: discovery (`jwks_uri` from the OpenID configuration), the
//! key-set URL, or `jwks_file`. Bodies are capped, redirects are not followed, and the cache
//! lifetime comes from `Cache-Control: max-age` (clamped to a minute … a day).

use std::time::Duration;

use super::jwks::{KeySet, MAX_JWKS_BYTES};
use super::settings::{IssuerSettings, KeySource, REFRESH_RANGE};

/// A key set as fetched.
#[derive(Debug)]
pub struct Fetched {
    pub set: KeySet,
    pub raw: serde_json::Value,
    pub from: String,
    /// The response's `max-age`, clamped; `None` when it says nothing.
    pub max_age: Option<chrono::Duration>,
}

/// The HTTP client key sets are fetched with (rustls, ring; 5 s timeout; no redirects).
pub fn client() -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("botgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Fetch (or read) `issuer`'s key set.
/// A relative `jwks_file` is under `base` (the policy file's directory).
pub async fn key_set(
    client: &reqwest::Client,
    issuer: &IssuerSettings,
    base: &std::path::Path,
) -> Result<Fetched, String> {
    let url = match &issuer.source {
        KeySource::File(path) => {
            let path = &base.join(path);
            let bytes = crate::input::read(path, crate::input::JWKS_FILE)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return parsed(&bytes, path.display().to_string(), None);
        }
        KeySource::Url(u) => u.clone(),
        KeySource::Discovery(config_url) => {
            let (body, _) = get(client, config_url).await?;
            #[derive(serde::Deserialize)]
            struct Discovery {
                issuer: Option<String>,
                jwks_uri: Option<String>,
            }
            let d: Discovery = serde_json::from_slice(&body)
                .map_err(|e| format!("{config_url}: not an OpenID configuration: {e}"))?;
            if let Some(i) = &d.issuer
                && i.trim_end_matches('/') != issuer.issuer.trim_end_matches('/')
            {
                return Err(format!(
                    "{config_url} names issuer {i:?}, not {:?} (OpenID Discovery requires them to match)",
                    issuer.issuer
                ));
            }
            let jwks = d
                .jwks_uri
                .ok_or_else(|| format!("{config_url} has no jwks_uri"))?;
            super::settings::check_url(&jwks)
                .map_err(|e| format!("{config_url} gives jwks_uri {e}"))?;
            jwks
        }
    };
    let (body, max_age) = get(client, &url).await?;
    parsed(&body, url, max_age)
}

fn parsed(
    bytes: &[u8],
    from: String,
    max_age: Option<chrono::Duration>,
) -> Result<Fetched, String> {
    let set = KeySet::parse(bytes).map_err(|e| format!("{from}: {e}"))?;
    let raw = serde_json::from_slice(bytes).map_err(|e| format!("{from}: {e}"))?;
    Ok(Fetched {
        set,
        raw,
        from,
        max_age,
    })
}

/// GET `url`: a 2xx body of at most `MAX_JWKS_BYTES`, and its `max-age`.
async fn get(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, Option<chrono::Duration>), String> {
    let mut resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{url}: the response is over {MAX_JWKS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// The error and its causes, as one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `max-age=N` of a Cache-Control value, clamped; `no-cache`/`no-store` mean the shortest.
fn max_age(value: &str) -> Option<chrono::Duration> {
    let mut out = None;
    for d in value.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(chrono::Duration::seconds(REFRESH_RANGE.0));
        }
        if let Some(n) = lower.strip_prefix("max-age=")
            && let Ok(n) = n.trim_matches('"').parse::<i64>()
        {
            out = Some(chrono::Duration::seconds(
                n.clamp(REFRESH_RANGE.0, REFRESH_RANGE.1),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(chrono::Duration::hours(1))
        );
        assert_eq!(max_age("max-age=5"), Some(chrono::Duration::seconds(60)));
        assert_eq!(max_age("max-age=9999999"), Some(chrono::Duration::days(1)));
        assert_eq!(max_age("no-store"), Some(chrono::Duration::seconds(60)));
        assert_eq!(max_age("public"), None);
    }
}
