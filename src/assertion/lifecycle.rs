//! A signing key's life, derived from its timestamps so every gate agrees without talking:
//! published from `created_at`, signing from `activates_at` (the newest key whose activation has
//! come signs), retiring once a newer key activates, removed `overlap` after that. Rotation
//! publishes the new key `publish_ahead` before it signs, so verifiers that cache the key set
//! already hold it; the lease holder's `tick` writes one admin event per step and removes keys
//! whose overlap is over.

use chrono::{DateTime, Duration, Utc};

use super::keys::{self, Alg};
use crate::audit::AccessEvent;
use crate::store::signing_keys::{NewSigningKey, SigningKeyRecord};
use crate::store::{AdminEntry, Store, StoreError};

/// The hosted product's overlap: an old key stays published this long after it stops signing.
pub const DEFAULT_OVERLAP_DAYS: i64 = 7;
/// How long a new key is published before it signs (`keys rotate --publish-ahead`).
pub const DEFAULT_PUBLISH_AHEAD_SECS: i64 = 3600;
/// Automatic rotation: a new key every six weeks (`[gate] assertion_key_rotation`).
pub const DEFAULT_ROTATION_DAYS: i64 = 42;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing.
    Active,
    /// Superseded; still published until its overlap ends.
    Retiring,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
        }
    }

    /// The admin event's action for reaching this state.
    fn action(self) -> &'static str {
        match self {
            KeyState::Next => "signing_key_created",
            KeyState::Active => "signing_key_activated",
            KeyState::Retiring => "signing_key_retiring",
        }
    }
}

/// How keys are made and rotated (`[gate] assertion_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    pub alg: Alg,
    /// Automatic rotation period; `None`: only `keys rotate` rotates.
    pub rotation: Option<Duration>,
    pub publish_ahead: Duration,
    pub overlap: Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            alg: Alg::Rs256,
            rotation: Some(Duration::days(DEFAULT_ROTATION_DAYS)),
            publish_ahead: Duration::seconds(DEFAULT_PUBLISH_AHEAD_SECS),
            overlap: Duration::days(DEFAULT_OVERLAP_DAYS),
        }
    }
}

/// The index of the signing key among keys ordered by activation: the newest whose activation
/// has come; when none has (only keys published ahead), the first. The one rule the gate's key
/// ring and `keys list` both ask.
pub fn active_index(
    activations: impl Iterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<usize> {
    let mut found = None;
    let mut any = false;
    for (i, at) in activations.enumerate() {
        any = true;
        if at <= now {
            found = Some(i);
        }
    }
    found.or(any.then_some(0))
}

/// One key's state at a moment.
#[derive(Debug, Clone)]
pub struct KeyStatus<'a> {
    pub record: &'a SigningKeyRecord,
    pub state: KeyState,
    /// When it entered `state`.
    pub since: DateTime<Utc>,
    /// Retiring: when it leaves the key set.
    pub removes_at: Option<DateTime<Utc>>,
    /// Active: when automatic rotation publishes its successor.
    pub rotates_at: Option<DateTime<Utc>>,
}

/// Every key's state at `now` (keys ordered by activation, as the store lists them).
pub fn statuses<'a>(
    keys: &'a [SigningKeyRecord],
    now: DateTime<Utc>,
    policy: &KeyPolicy,
) -> Vec<KeyStatus<'a>> {
    let active = active_index(keys.iter().map(|k| k.activates_at), now);
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let (state, since) = match active {
                Some(a) if i == a => (KeyState::Active, k.activates_at.min(now)),
                Some(a) if i < a => (KeyState::Retiring, keys[i + 1].activates_at),
                _ => (KeyState::Next, k.created_at),
            };
            KeyStatus {
                record: k,
                state,
                since,
                removes_at: (state == KeyState::Retiring).then(|| since + policy.overlap),
                rotates_at: match (state, policy.rotation) {
                    (KeyState::Active, Some(every)) => Some(k.created_at + every),
                    _ => None,
                },
            }
        })
        .collect()
}

/// The admin journal entry for a key's step.
fn admin_entry(
    now: DateTime<Utc>,
    action: &str,
    k: &SigningKeyRecord,
    extra: serde_json::Value,
) -> AdminEntry {
    let mut details = serde_json::json!({
        "kid": k.kid,
        "alg": k.alg,
        "activates_at": crate::clock::rfc3339(k.activates_at),
    });
    if let (Some(d), serde_json::Value::Object(extra)) = (details.as_object_mut(), extra) {
        d.extend(extra);
    }
    let target = format!("signing key {}", &k.kid[..k.kid.len().min(16)]);
    let ev = AccessEvent::admin(now, action, &target, details);
    crate::audit::admin::entry(&ev, &target)
}

/// Generate and store a key that signs from `activates_at` (now: at once).
pub async fn create(
    store: &Store,
    alg: Alg,
    now: DateTime<Utc>,
    activates_at: DateTime<Utc>,
) -> Result<SigningKeyRecord, KeyError> {
    create_with(store, alg, now, activates_at, false)
        .await?
        .ok_or_else(|| KeyError::Generate("the store refused the key".into()))
}

/// `create`; `first`: only into a store without keys (`None` when another gate made one).
async fn create_with(
    store: &Store,
    alg: Alg,
    now: DateTime<Utc>,
    activates_at: DateTime<Utc>,
    first: bool,
) -> Result<Option<SigningKeyRecord>, KeyError> {
    // RSA key generation takes a while: off the runtime's threads when there is one.
    let g = match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(move || keys::generate(alg, now))
            .await
            .map_err(|e| KeyError::Generate(e.to_string()))?,
        Err(_) => keys::generate(alg, now),
    }
    .map_err(KeyError::Generate)?;
    let state = if activates_at <= now {
        KeyState::Active
    } else {
        KeyState::Next
    };
    let jwk = g.public_jwk.to_string();
    let new = NewSigningKey {
        kid: &g.kid,
        alg: alg.as_str(),
        private_pem: &g.private_pem,
        public_jwk: &jwk,
        cert_pem: &g.cert_pem,
        created_at: now,
        activates_at,
        announced: state.as_str(),
    };
    let admin = |k: &SigningKeyRecord| {
        admin_entry(
            now,
            KeyState::Next.action(),
            k,
            serde_json::json!({ "state": state.as_str() }),
        )
    };
    if first {
        return Ok(store.insert_first_signing_key(&new, &admin).await?);
    }
    Ok(Some(store.insert_signing_key(&new, &admin).await?))
}

/// At gate start: a store without keys gets one that signs at once (nobody can have cached a
/// key set yet). `None`: there were keys.
pub async fn ensure_key(
    store: &Store,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Option<SigningKeyRecord>, KeyError> {
    if !store.list_signing_keys().await?.is_empty() {
        return Ok(None);
    }
    create_with(store, policy.alg, now, now, true).await
}

/// `keys rotate`: publish a new key now that signs after `publish_ahead`. Refused while a key
/// is already waiting to sign.
pub async fn rotate(
    store: &Store,
    alg: Alg,
    now: DateTime<Utc>,
    publish_ahead: Duration,
    policy: &KeyPolicy,
) -> Result<SigningKeyRecord, KeyError> {
    let keys = store.list_signing_keys().await?;
    if let Some(waiting) = statuses(&keys, now, policy)
        .iter()
        .find(|s| s.state == KeyState::Next)
    {
        return Err(KeyError::AlreadyRotating {
            kid: waiting.record.kid.clone(),
            activates_at: waiting.record.activates_at,
        });
    }
    create(store, alg, now, now + publish_ahead).await
}

/// What one `tick` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Published { kid: String },
    Announced { kid: String, state: KeyState },
    Removed { kid: String },
}

/// The lease holder's periodic job: publish a successor when the active key is due for
/// automatic rotation, write an admin event for each state a key reached, and remove keys
/// whose overlap is over.
pub async fn tick(
    store: &Store,
    policy: &KeyPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Step>, KeyError> {
    let mut steps = Vec::new();
    let mut keys = store.list_signing_keys().await?;
    let due = {
        let st = statuses(&keys, now, policy);
        let waiting = st.iter().any(|s| s.state == KeyState::Next);
        !waiting
            && st
                .iter()
                .any(|s| s.state == KeyState::Active && s.rotates_at.is_some_and(|t| t <= now))
    };
    if due {
        let k = create(store, policy.alg, now, now + policy.publish_ahead).await?;
        steps.push(Step::Published { kid: k.kid });
        keys = store.list_signing_keys().await?;
    }
    for s in statuses(&keys, now, policy) {
        let kid = s.record.kid.clone();
        if s.removes_at.is_some_and(|t| t <= now) {
            let admin = |k: &SigningKeyRecord| {
                admin_entry(now, "signing_key_removed", k, serde_json::json!({}))
            };
            if store.remove_signing_key(&kid, &admin).await?.is_some() {
                steps.push(Step::Removed { kid });
            }
            continue;
        }
        if s.record.announced != s.state.as_str() {
            let extra = serde_json::json!({
                "state": s.state.as_str(),
                "removes_at": s.removes_at.map(crate::clock::rfc3339),
            });
            let admin = |k: &SigningKeyRecord| admin_entry(now, s.state.action(), k, extra.clone());
            if store
                .announce_signing_key(&kid, s.state.as_str(), &admin)
                .await?
                .is_some()
            {
                steps.push(Step::Announced {
                    kid,
                    state: s.state,
                });
            }
        }
    }
    Ok(steps)
}

/// Key management failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a signing key: {0}")]
    Generate(String),
    #[error(
        "key {kid} is already published and signs from {}; wait for it (or see `botgate keys list`)",
        crate::clock::rfc3339(*activates_at)
    )]
    AlreadyRotating {
        kid: String,
        activates_at: DateTime<Utc>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::wait;

    fn t(secs: i64) -> DateTime<Utc> {
        chrono::TimeZone::timestamp_opt(&Utc, 1_800_000_000 + secs, 0).unwrap()
    }

    fn policy() -> KeyPolicy {
        KeyPolicy {
            alg: Alg::Es256,
            rotation: Some(Duration::seconds(1000)),
            publish_ahead: Duration::seconds(100),
            overlap: Duration::seconds(50),
        }
    }

    fn states(store: &Store, now: DateTime<Utc>) -> Vec<&'static str> {
        let keys = wait(store.list_signing_keys()).unwrap();
        statuses(&keys, now, &policy())
            .iter()
            .map(|s| s.state.as_str())
            .collect()
    }

    #[test]
    fn a_rotation_publishes_ahead_activates_retires_and_removes_with_one_event_per_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = wait(ensure_key(&store, &policy(), t(0))).unwrap().unwrap();
        assert!(wait(ensure_key(&store, &policy(), t(1))).unwrap().is_none());
        assert_eq!(states(&store, t(0)), ["active"]);
        assert!(wait(tick(&store, &policy(), t(10))).unwrap().is_empty());

        // Due at created + rotation: the successor is published, not yet signing.
        let steps = wait(tick(&store, &policy(), t(1000))).unwrap();
        let Step::Published { kid: second } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(states(&store, t(1000)), ["active", "next"]);
        let keys = wait(store.list_signing_keys()).unwrap();
        let ring = super::super::KeyRing::from_records(&keys);
        assert_eq!(&*ring.signer(t(1099)).unwrap().kid, first.kid.as_str());
        assert_eq!(&*ring.signer(t(1100)).unwrap().kid, second.as_str());
        assert!(
            matches!(
                wait(rotate(
                    &store,
                    Alg::Es256,
                    t(1001),
                    Duration::seconds(5),
                    &policy()
                )),
                Err(KeyError::AlreadyRotating { .. })
            ),
            "one waiting key at a time"
        );

        let steps = wait(tick(&store, &policy(), t(1100))).unwrap();
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(states(&store, t(1100)), ["retiring", "active"]);
        assert!(wait(tick(&store, &policy(), t(1120))).unwrap().is_empty());
        let steps = wait(tick(&store, &policy(), t(1150))).unwrap();
        assert_eq!(steps, [Step::Removed { kid: first.kid }]);
        assert_eq!(states(&store, t(1150)), ["active"]);

        let actions: Vec<String> = wait(store.journal_since(0))
            .unwrap()
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.event_line).unwrap();
                v["decision"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            actions,
            [
                "signing_key_created",
                "signing_key_created",
                "signing_key_retiring",
                "signing_key_activated",
                "signing_key_removed"
            ]
        );
    }

    #[test]
    fn the_first_key_signs_even_before_its_activation_and_the_newest_activated_wins() {
        let at = [t(100), t(200), t(300)];
        assert_eq!(active_index(at.into_iter(), t(0)), Some(0));
        assert_eq!(active_index(at.into_iter(), t(250)), Some(1));
        assert_eq!(active_index(at.into_iter(), t(300)), Some(2));
        assert_eq!(active_index(std::iter::empty(), t(0)), None);
    }
}
