//! The configured issuers and their key sets, as the gate uses them: keys are fetched (or
//! read from `jwks_file`) off the request path, kept for their cache lifetime, refreshed at
//! once on an unknown `kid` (at most once a minute per issuer), and the last good set is kept
//! when the issuer cannot be reached. Each attempt is written to `<state>/oidc/<name>.json`,
//! which `botgate issuer list|show` read and `botgate issuer refresh` writes (a gate adopts a
//! newer file within a tick), so a restart while the issuer is down still has keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fetch;
use super::jwks::KeySet;
use super::settings::IssuerSettings;
use super::token::{self, OidcError};
use crate::credential::oidc::OidcIdentity;

/// The shortest time between two refreshes an unknown `kid` may cause.
pub const KID_REFRESH_EVERY: i64 = 60;

/// A key set in use, and where and when it came from.
#[derive(Debug)]
pub struct CachedKeys {
    pub set: KeySet,
    pub fetched_at: DateTime<Utc>,
    /// When it is fetched again (its cache lifetime).
    pub expires_at: DateTime<Utc>,
    /// Where it was read from (the key-set URL or file).
    pub from: String,
    /// The document as fetched (kept for the state file).
    raw: serde_json::Value,
}

/// What one refresh did to an issuer's key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub issuer: Arc<str>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Whether there was a key set before (the first fetch is not a change).
    pub had_keys: bool,
}

impl KeyChange {
    pub fn changed(&self) -> bool {
        self.had_keys && (!self.added.is_empty() || !self.removed.is_empty())
    }
}

/// Counters of one issuer since the gate started.
#[derive(Debug, Default)]
pub struct Counters {
    pub verified: AtomicU64,
    pub refused: AtomicU64,
    /// Verifications that found their key in the cached set without a fetch.
    pub cache_hits: AtomicU64,
    /// Verifications whose `kid` was not in the cached set.
    pub kid_misses: AtomicU64,
    /// Requests whose token had verified before (no signature check).
    pub token_cache_hits: AtomicU64,
}

/// Refresh bookkeeping of one issuer (also what the state file records).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshStatus {
    #[serde(default, with = "crate::audit::event::rfc3339_ms::option")]
    pub last_attempt: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failed attempts since the last good one.
    #[serde(default)]
    pub failures: u64,
}

/// One issuer at run time.
#[derive(Debug)]
pub struct IssuerState {
    pub settings: Arc<IssuerSettings>,
    keys: ArcSwapOption<CachedKeys>,
    status: std::sync::Mutex<RefreshStatus>,
    /// One refresh at a time; concurrent unknown-kid requests wait for it.
    refreshing: tokio::sync::Mutex<()>,
    /// Unix seconds of the last refresh an unknown kid caused.
    last_kid_refresh: AtomicI64,
    /// Unix seconds of the last refresh a request made while there was no key set yet.
    last_empty_refresh: AtomicI64,
    /// When this gate started using the issuer (the age of "no keys yet").
    pub since: DateTime<Utc>,
    pub counters: Counters,
    /// The state file's modification time when last read or written.
    file_seen: std::sync::Mutex<Option<std::time::SystemTime>>,
}

impl IssuerState {
    /// The key set in use.
    pub fn keys(&self) -> Option<Arc<CachedKeys>> {
        self.keys.load_full()
    }

    pub fn status(&self) -> RefreshStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// How old the last good key set is at `now` (since `since` when there is none).
    pub fn key_age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.keys().map(|k| k.fetched_at).unwrap_or(self.since)
    }

    /// Whether the key set is older than `max_key_age` (`oidc_keys_stale`; `issuer list`).
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.key_age(now) > self.settings.max_key_age
    }
}

#[derive(Debug, Default)]
struct Table {
    by_iss: HashMap<String, Arc<IssuerState>>,
    ordered: Vec<Arc<IssuerState>>,
}

/// A token that verified, kept until it expires: a job sends the same token on every request
/// of its run, and a signature check costs 30–70 µs. Valid only while its issuer's state and
/// key set are the ones it was checked with (a reload or a key-set change re-verifies).
#[derive(Debug)]
struct Verified {
    id: Arc<OidcIdentity>,
    state: Arc<IssuerState>,
    keys: Arc<CachedKeys>,
    /// `exp` plus the leeway (Unix seconds).
    until: i64,
}

/// The most verified tokens kept (a few MiB at most).
const VERIFIED_CACHE: usize = 4096;

/// Every configured issuer.
#[derive(Debug)]
pub struct Issuers {
    table: ArcSwap<Table>,
    /// Verified tokens by SHA-256 of the token.
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
    /// `<state>/oidc`; `None` keeps nothing on disk (tests of the verifier alone).
    dir: Option<PathBuf>,
    /// The policy file's directory: relative `jwks_file` paths are under it.
    base: PathBuf,
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl Issuers {
    /// Issuers keeping their state files under `state_dir`, reading relative `jwks_file`s
    /// under `policy_dir`.
    pub fn new(state_dir: Option<&Path>, policy_dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            table: ArcSwap::from_pointee(Table::default()),
            verified: Default::default(),
            dir: state_dir.map(|d| d.join("oidc")),
            base: policy_dir.to_path_buf(),
            http: Default::default(),
        })
    }

    /// Take the issuers of a (re)loaded policy file: an issuer whose settings did not change
    /// keeps its keys and counters; a new one starts from its state file if it has one.
    pub fn sync(&self, settings: &[Arc<IssuerSettings>], now: DateTime<Utc>) {
        let old = self.table.load();
        let mut table = Table::default();
        for s in settings {
            let state = match old.ordered.iter().find(|st| st.settings == *s) {
                Some(st) => st.clone(),
                None => {
                    let st = Arc::new(IssuerState {
                        settings: s.clone(),
                        keys: ArcSwapOption::empty(),
                        status: Default::default(),
                        refreshing: Default::default(),
                        last_kid_refresh: AtomicI64::new(i64::MIN),
                        last_empty_refresh: AtomicI64::new(i64::MIN),
                        since: now,
                        counters: Counters::default(),
                        file_seen: Default::default(),
                    });
                    self.adopt_file(&st);
                    st
                }
            };
            table.by_iss.insert(s.issuer.clone(), state.clone());
            table.ordered.push(state);
        }
        self.table.store(Arc::new(table));
    }

    pub fn is_empty(&self) -> bool {
        self.table.load().ordered.is_empty()
    }

    /// The issuers in file order.
    pub fn all(&self) -> Vec<Arc<IssuerState>> {
        self.table.load().ordered.clone()
    }

    /// The issuer whose tokens carry this `iss`.
    pub fn by_iss(&self, iss: &str) -> Option<Arc<IssuerState>> {
        self.table.load().by_iss.get(iss).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<IssuerState>> {
        self.table
            .load()
            .ordered
            .iter()
            .find(|s| &*s.settings.name == name)
            .cloned()
    }

    /// Verify a workload token at `now`: its issuer by `iss`, then its signature and claims.
    /// An unknown `kid` refreshes the issuer's key set first (at most once a minute). A token
    /// that verified before, with the same issuer state and key set, is not checked again
    /// until it expires.
    pub async fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<OidcIdentity>, (Option<Arc<IssuerState>>, OidcError)> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(id) = self.cached(&digest, now.timestamp()) {
            return Ok(id);
        }
        let parsed = token::parse(token).map_err(|e| (None, e))?;
        let exp = parsed.claims.get("exp").and_then(serde_json::Value::as_i64);
        let outcome = self.verify_parsed(parsed, token, now).await;
        if let (Ok((id, state)), Some(exp)) = (&outcome, exp)
            && let Some(keys) = state.keys()
        {
            let entry = Verified {
                id: id.clone(),
                state: state.clone(),
                keys,
                until: exp + state.settings.leeway.num_seconds(),
            };
            if let Ok(mut map) = self.verified.lock() {
                if map.len() >= VERIFIED_CACHE {
                    let unix = now.timestamp();
                    map.retain(|_, v| v.until > unix);
                    if map.len() >= VERIFIED_CACHE {
                        map.clear();
                    }
                }
                map.insert(digest, entry);
            }
        }
        outcome.map(|(id, _)| id)
    }

    /// A verified token still good at `unix`: unexpired, and its issuer's state and key set
    /// are still the ones in use.
    fn cached(&self, digest: &[u8; 32], unix: i64) -> Option<Arc<OidcIdentity>> {
        let map = self.verified.lock().ok()?;
        let v = map.get(digest)?;
        if v.until <= unix {
            return None;
        }
        let table = self.table.load();
        let current = table.by_iss.get(v.state.settings.issuer.as_str())?;
        let keys = current.keys.load();
        let same_keys = keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, &v.keys));
        if !Arc::ptr_eq(current, &v.state) || !same_keys {
            return None;
        }
        v.state
            .counters
            .token_cache_hits
            .fetch_add(1, Ordering::Relaxed);
        v.state.counters.verified.fetch_add(1, Ordering::Relaxed);
        Some(v.id.clone())
    }

    async fn verify_parsed(
        &self,
        parsed: token::Parsed<'_>,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Arc<OidcIdentity>, Arc<IssuerState>), (Option<Arc<IssuerState>>, OidcError)> {
        let Some(state) = self.by_iss(&parsed.iss) else {
            return Err((
                None,
                OidcError::UnknownIssuer(token::truncate(&parsed.iss, 200)),
            ));
        };
        let fail = |state: &Arc<IssuerState>, e: OidcError| {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            Err((Some(state.clone()), e))
        };
        let unix = now.timestamp();
        let mut keys = state.keys();
        if keys.is_none() {
            // No key set yet (the first fetch is under way, or the issuer is down): wait for
            // it, or try once, as for an unknown kid.
            let _ = self.refresh_for_request(&state, now).await;
            keys = state.keys();
        }
        let Some(cached) = keys else {
            let why = state
                .status()
                .last_error
                .unwrap_or_else(|| "not fetched yet".into());
            return fail(
                &state,
                OidcError::BadSignature(format!(
                    "no key set for issuer {} yet ({why})",
                    state.settings.name
                )),
            );
        };
        // Parsed holds borrowed bytes of `token`; verifying consumes it, so a retry re-parses.
        match parsed.verify(&state.settings, &cached.set, unix) {
            Ok(id) => {
                state.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                state.counters.verified.fetch_add(1, Ordering::Relaxed);
                Ok((Arc::new(id), state))
            }
            Err(OidcError::UnknownKey { issuer, kid }) => {
                state.counters.kid_misses.fetch_add(1, Ordering::Relaxed);
                match self.refresh_for_request(&state, now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return fail(
                            &state,
                            OidcError::BadSignature(format!(
                                "signed with key {kid:?}, which is not in {issuer}'s key set (refreshed within the last minute)"
                            )),
                        );
                    }
                    Err(e) => {
                        return fail(
                            &state,
                            OidcError::BadSignature(format!(
                                "signed with key {kid:?}, which is not in {issuer}'s cached key set, and the refresh failed: {e}"
                            )),
                        );
                    }
                }
                let fresh = state.keys();
                let retried = token::parse(token).and_then(|p| match &fresh {
                    Some(k) => p.verify(&state.settings, &k.set, unix),
                    None => Err(OidcError::BadSignature("no key set".into())),
                });
                match retried {
                    Ok(id) => {
                        state.counters.verified.fetch_add(1, Ordering::Relaxed);
                        Ok((Arc::new(id), state))
                    }
                    Err(OidcError::UnknownKey { issuer, kid }) => fail(
                        &state,
                        OidcError::BadSignature(format!(
                            "signed with key {kid:?}, which is not in {issuer}'s key set (just refreshed)"
                        )),
                    ),
                    Err(e) => fail(&state, e),
                }
            }
            Err(e) => fail(&state, e),
        }
    }

    /// A refresh a request asks for (unknown kid, no keys yet): when another refresh finished
    /// while this one waited, its result is taken (`Ok(true)`); otherwise at most one fetch a
    /// minute per issuer (`Ok(false)` when the minute's fetch was already made).
    async fn refresh_for_request(
        &self,
        state: &IssuerState,
        now: DateTime<Utc>,
    ) -> Result<bool, String> {
        let before = state.keys().map(|k| k.fetched_at);
        let _one = state.refreshing.lock().await;
        if state.keys().map(|k| k.fetched_at) != before {
            return Ok(true);
        }
        let slot = match before {
            Some(_) => &state.last_kid_refresh,
            None => &state.last_empty_refresh,
        };
        if !claim_slot(slot, now.timestamp()) {
            return Ok(false);
        }
        self.refresh_locked(state, now).await.map(|_| true)
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(fetch::client)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Fetch the issuer's key set now. On failure the last good set stays in use.
    pub async fn refresh(
        &self,
        state: &IssuerState,
        now: DateTime<Utc>,
    ) -> Result<KeyChange, String> {
        let _one = state.refreshing.lock().await;
        self.refresh_locked(state, now).await
    }

    /// `refresh`, with `state.refreshing` held by the caller.
    async fn refresh_locked(
        &self,
        state: &IssuerState,
        now: DateTime<Utc>,
    ) -> Result<KeyChange, String> {
        let fetched = match self.client() {
            Ok(c) => fetch::key_set(c, &state.settings, &self.base).await,
            Err(e) => Err(e),
        };
        let result = match fetched {
            Ok(f) => {
                let before = state.keys();
                let kids_before = before.as_ref().map(|k| k.set.kids()).unwrap_or_default();
                let kids = f.set.kids();
                let change = KeyChange {
                    issuer: state.settings.name.clone(),
                    added: kids
                        .iter()
                        .filter(|k| !kids_before.contains(k))
                        .cloned()
                        .collect(),
                    removed: kids_before
                        .iter()
                        .filter(|k| !kids.contains(k))
                        .cloned()
                        .collect(),
                    had_keys: before.is_some(),
                };
                let lifetime = f.max_age.unwrap_or(state.settings.refresh);
                state.keys.store(Some(Arc::new(CachedKeys {
                    set: f.set,
                    fetched_at: now,
                    expires_at: now + lifetime,
                    from: f.from,
                    raw: f.raw,
                })));
                if let Ok(mut s) = state.status.lock() {
                    *s = RefreshStatus {
                        last_attempt: Some(now),
                        last_error: None,
                        failures: 0,
                    };
                }
                Ok(change)
            }
            Err(e) => {
                if let Ok(mut s) = state.status.lock() {
                    s.last_attempt = Some(now);
                    s.last_error = Some(e.clone());
                    s.failures += 1;
                }
                Err(e)
            }
        };
        self.write_file(state);
        result
    }

    /// Refresh every issuer whose key set expired or never came, backing off after failures
    /// (5 s doubling to 5 min), and adopt newer state files (`botgate issuer refresh`).
    pub async fn refresh_due(
        &self,
        now: DateTime<Utc>,
    ) -> Vec<(Arc<IssuerState>, Result<KeyChange, String>)> {
        let mut out = Vec::new();
        for state in self.all() {
            self.adopt_file(&state);
            let status = state.status();
            let due = match state.keys() {
                Some(k) => k.expires_at <= now,
                None => true,
            };
            let backoff = chrono::Duration::seconds((5i64 << status.failures.min(6)).min(300));
            let waited = status
                .last_attempt
                .is_none_or(|t| status.failures == 0 || now - t >= backoff);
            if due && waited {
                let _one = state.refreshing.lock().await;
                // A request may have refreshed while this waited.
                if state.keys().is_some_and(|k| k.expires_at > now) {
                    continue;
                }
                let r = self.refresh_locked(&state, now).await;
                drop(_one);
                out.push((state, r));
            }
        }
        out
    }

    fn file_path(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    fn write_file(&self, state: &IssuerState) {
        let Some(path) = self.file_path(&state.settings.name) else {
            return;
        };
        let file = StateFile::of(state);
        let written = crate::atomic_file::write(&path, file.to_json().as_bytes());
        match written {
            Ok(()) => {
                if let Ok(mut seen) = state.file_seen.lock() {
                    *seen = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the issuer's key-set state file")
            }
        }
    }

    /// Take the state file's key set when it is newer than the one in use (written by another
    /// process: `botgate issuer refresh`, or this gate before a restart).
    fn adopt_file(&self, state: &IssuerState) {
        let Some(path) = self.file_path(&state.settings.name) else {
            return;
        };
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            return;
        };
        if let Ok(mut seen) = state.file_seen.lock() {
            if *seen == Some(modified) {
                return;
            }
            *seen = Some(modified);
        }
        let Some(file) = StateFile::read(&path) else {
            return;
        };
        if file.issuer != state.settings.issuer {
            return;
        }
        if let (Some(fetched_at), Some(jwks)) = (file.fetched_at, &file.jwks) {
            let newer = state.keys().is_none_or(|k| fetched_at > k.fetched_at);
            if newer && let Ok(set) = KeySet::parse(jwks.to_string().as_bytes()) {
                state.keys.store(Some(Arc::new(CachedKeys {
                    set,
                    fetched_at,
                    expires_at: file
                        .expires_at
                        .unwrap_or(fetched_at + state.settings.refresh),
                    from: file.from.clone().unwrap_or_default(),
                    raw: jwks.clone(),
                })));
                if let Ok(mut s) = state.status.lock() {
                    *s = file.status.clone();
                }
                return;
            }
        }
        // No newer keys, but the file knows of attempts this state never made (another gate's
        // or `issuer refresh`'s failures): show them rather than "never tried".
        if let Ok(mut s) = state.status.lock()
            && s.last_attempt.is_none()
        {
            *s = file.status;
        }
    }
}

/// Claim a once-a-minute refresh slot (`false` when this minute's was taken).
fn claim_slot(slot: &AtomicI64, unix: i64) -> bool {
    let last = slot.load(Ordering::Relaxed);
    if last != i64::MIN && unix - last < KID_REFRESH_EVERY {
        return false;
    }
    slot.compare_exchange(last, unix, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// `<state>/oidc/<name>.json`: the last good key set and the last attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateFile {
    pub name: String,
    pub issuer: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default, with = "crate::audit::event::rfc3339_ms::option")]
    pub fetched_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::audit::event::rfc3339_ms::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub kids: Vec<String>,
    #[serde(flatten)]
    pub status: RefreshStatus,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

impl StateFile {
    fn of(state: &IssuerState) -> Self {
        let keys = state.keys();
        Self {
            name: state.settings.name.to_string(),
            issuer: state.settings.issuer.clone(),
            from: keys.as_ref().map(|k| k.from.clone()),
            fetched_at: keys.as_ref().map(|k| k.fetched_at),
            expires_at: keys.as_ref().map(|k| k.expires_at),
            kids: keys.as_ref().map(|k| k.set.kids()).unwrap_or_default(),
            status: state.status(),
            jwks: keys.as_ref().map(|k| k.raw.clone()),
        }
    }

    /// The state file of issuer `name` under `state_dir`, if there is a readable one.
    pub fn load(state_dir: &Path, name: &str) -> Option<Self> {
        Self::read(&state_dir.join("oidc").join(format!("{name}.json")))
    }

    fn read(path: &Path) -> Option<Self> {
        let text = crate::input::read(path, crate::input::JWKS_FILE).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
