//! The origin assertion on the request path: the `Cf-Access-Jwt-Assertion` value for an admitted
//! request, signed once per (app, credential, policy) and re-signed before it expires or when
//! the signing key or the app's audience changes; and the two public endpoints, the key set
//! (`/cdn-cgi/access/certs`) and `/cdn-cgi/access/get-identity`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::header::HeaderValue;

use crate::assertion::jwt::{self, Claims};
use crate::assertion::{KeyRing, Settings};
use crate::policy::{CompiledApp, PolicySet};
use crate::store::{Store, StoreError};

/// Most cached assertions; past it the cache starts over (each entry re-signs on next use).
const MAX_CACHED: usize = 100_000;

/// Who an assertion speaks for.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Token {
        client_id: &'a str,
    },
    Cert {
        common_name: Option<&'a str>,
        fingerprint_sha256: &'a str,
        spiffe_id: Option<&'a str>,
    },
    /// An OIDC workload, by its identity (`oidc:<issuer>/<sub>`).
    Workload {
        identity: &'a str,
    },
    /// Admitted without a credential (an IP or country policy, `bypass`).
    None,
}

impl Subject<'_> {
    /// The cache key: one entry per credential.
    fn key(&self) -> &str {
        match self {
            Subject::Token { client_id } => client_id,
            Subject::Workload { identity } => identity,
            Subject::Cert {
                fingerprint_sha256, ..
            } => fingerprint_sha256,
            Subject::None => "",
        }
    }

    fn connection_method(&self) -> &'static str {
        match self {
            Subject::Token { .. } => "service_token",
            Subject::Cert { .. } => "mtls",
            Subject::Workload { .. } => "oidc",
            Subject::None => "none",
        }
    }
}

#[derive(Debug)]
struct Cached {
    value: HeaderValue,
    kid: Arc<str>,
    aud: Arc<str>,
    policy: Option<Box<str>>,
    /// Unix seconds after which it is re-signed (a fifth of the lifetime before `exp`).
    refresh_at: i64,
}

/// One app's assertions by credential (client id, certificate fingerprint, `""` for none).
type AppCache = HashMap<Box<str>, Cached>;

/// Signs and caches assertions for a running gate.
#[derive(Debug)]
pub struct Assertions {
    settings: Settings,
    /// App name → credential → assertion.
    cache: RwLock<HashMap<Box<str>, AppCache>>,
}

impl Assertions {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            cache: RwLock::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The assertion for `who` admitted to `app` by `policy` at `now`, from the cache when it
    /// is still fresh for the current key and audience. `None` when no key can sign (logged).
    pub fn header(
        &self,
        keys: &KeyRing,
        app: &CompiledApp,
        who: &Subject<'_>,
        policy: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<HeaderValue> {
        let signer = keys.signer(now)?;
        let secs = now.timestamp();
        let fresh = |c: &Cached| {
            secs < c.refresh_at
                && *c.kid == *signer.kid
                && Arc::ptr_eq(&c.aud, &app.audience)
                && c.policy.as_deref() == policy
        };
        {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(app.name.as_str()).and_then(|m| m.get(who.key()))
                && fresh(c)
            {
                return Some(c.value.clone());
            }
        }
        let claims = self.claims(app, who, policy, secs);
        let token = match jwt::sign(signer, &claims) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(app = %app.name, error = %e, "cannot sign the origin assertion; forwarding without it");
                return None;
            }
        };
        let value = HeaderValue::from_maybe_shared(Bytes::from(token)).ok()?;
        let ttl = self.settings.ttl.num_seconds();
        let entry = Cached {
            value: value.clone(),
            kid: signer.kid.clone(),
            aud: app.audience.clone(),
            policy: policy.map(Into::into),
            refresh_at: claims.exp - ttl / 5,
        };
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED {
            cache.clear();
        }
        cache
            .entry(app.name.as_str().into())
            .or_default()
            .insert(who.key().into(), entry);
        Some(value)
    }

    fn claims(
        &self,
        app: &CompiledApp,
        who: &Subject<'_>,
        policy: Option<&str>,
        now: i64,
    ) -> Claims {
        let (common_name, fingerprint, spiffe_id) = match *who {
            Subject::Token { client_id } => (Some(client_id), None, None),
            Subject::Workload { identity } => (Some(identity), None, None),
            Subject::Cert {
                common_name,
                fingerprint_sha256,
                spiffe_id,
            } => (common_name, Some(fingerprint_sha256), spiffe_id),
            Subject::None => (None, None, None),
        };
        Claims {
            aud: vec![app.audience.to_string()],
            iss: self.settings.issuer.clone(),
            iat: now,
            nbf: now,
            exp: now + self.settings.ttl.num_seconds(),
            kind: "app".into(),
            sub: String::new(),
            common_name: common_name.map(str::to_string),
            cert_fingerprint_sha256: fingerprint.map(str::to_string),
            spiffe_id: spiffe_id.map(str::to_string),
            policy: policy.map(str::to_string),
            connection_method: who.connection_method().into(),
        }
    }
}

/// Give every app that sends assertions its audience tag: the one written on the app
/// (`aud = "…"`), else the store's (assigned once per app name, random, shared by every gate).
pub async fn resolve_audiences(store: &Store, set: &mut PolicySet) -> Result<(), StoreError> {
    let wanted: Vec<(String, String)> = set
        .apps
        .iter()
        .filter(|a| a.assertion && a.aud_override.is_none())
        .map(|a| (a.name.clone(), crate::assertion::new_audience_tag()))
        .collect();
    let stored: HashMap<String, String> = if wanted.is_empty() {
        HashMap::new()
    } else {
        store
            .app_audiences(&wanted, Utc::now())
            .await?
            .into_iter()
            .collect()
    };
    for app in &mut set.apps {
        let tag = match &app.aud_override {
            Some(aud) => Some(aud.as_str()),
            None => stored.get(&app.name).map(String::as_str),
        };
        if let Some(tag) = tag {
            app.audience = tag.into();
        }
    }
    Ok(())
}

/// The key set as the endpoint answers it.
pub fn key_set_body(keys: &KeyRing, now: DateTime<Utc>) -> Bytes {
    Bytes::from(serde_json::to_vec(&keys.key_set(now)).unwrap_or_default())
}

/// `get-identity`: the assertion in `Cf-Access-Jwt-Assertion` (or the `CF_Authorization`
/// cookie, where browsers carry it for the hosted product), verified against the key set.
pub fn identity(
    headers: &hyper::HeaderMap,
    keys: &KeyRing,
    now: DateTime<Utc>,
) -> Result<Claims, String> {
    let token = headers
        .get(crate::assertion::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| cookie(headers, "CF_Authorization"))
        .ok_or("send the assertion in the Cf-Access-Jwt-Assertion header")?;
    jwt::verify(token.trim(), keys, now.timestamp())
        .map_err(|e| format!("the assertion does not verify: {e}"))
}

fn cookie(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}
