//! The policy file model (contract, TOML). Values that validation may reject carry their span
//! (`toml::Spanned`) so an error can name the exact line and column.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The whole policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub gate: GateSection,
    #[serde(default)]
    pub app: Vec<AppConfig>,
    #[serde(default)]
    pub inventory: InventorySection,
    #[serde(default)]
    pub geo: GeoSection,
    #[serde(default)]
    pub rotation: RotationSection,
    #[serde(default)]
    pub detect: toml::Table,
    #[serde(default)]
    pub sink: Vec<toml::Table>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub tokens: TokensSection,
    /// `[[oidc_issuer]]`: issuers whose workload tokens are credentials (`issuer` alone is the
    /// certificate selector, hence the longer name).
    #[serde(default)]
    pub oidc_issuer: Vec<OidcIssuerConfig>,
}

/// One `[[oidc_issuer]]`: where its keys come from and what its tokens must say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The name selectors and identities use (`oidc:<name>/<sub>`).
    pub name: Spanned<String>,
    /// The `iss` its tokens carry, exactly.
    pub issuer: Spanned<String>,
    /// The key set's URL; without it (and without `jwks_file`) discovery finds it.
    #[serde(default)]
    pub jwks_url: Option<Spanned<String>>,
    /// A key set on disk instead of fetched (relative to the policy file).
    #[serde(default)]
    pub jwks_file: Option<Spanned<PathBuf>>,
    /// `true`: read `jwks_uri` from `<issuer>/.well-known/openid-configuration` (the default
    /// when neither `jwks_url` nor `jwks_file` is set).
    #[serde(default)]
    pub discovery: Option<Spanned<bool>>,
    /// Tokens must name one of these in `aud` (required, never empty).
    pub audiences: Spanned<Vec<String>>,
    /// Accepted signature algorithms (default RS256, ES256).
    #[serde(default)]
    pub algorithms: Option<Spanned<Vec<String>>>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 60s).
    #[serde(default)]
    pub leeway: Option<Spanned<String>>,
    /// How long a fetched key set is used before it is fetched again when the issuer's
    /// Cache-Control says nothing (default 1h).
    #[serde(default)]
    pub refresh: Option<Spanned<String>>,
    /// Alert (`oidc_keys_stale`) when the last good key set is older than this (default 24h).
    #[serde(default)]
    pub max_key_age: Option<Spanned<String>>,
}

/// `[tokens]`: retiring tokens nobody uses (both off by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    /// Disable a token unseen this long (or never used this long since it was created).
    #[serde(default)]
    pub disable_after_inactive: Option<Spanned<String>>,
    /// Disable a token no policy admits, this long after it was created or last seen.
    #[serde(default)]
    pub disable_unreferenced: Option<Spanned<String>>,
}

impl TokensSection {
    /// The two periods, parsed; `Err((key, message))` for a value that is not a duration.
    #[allow(clippy::type_complexity)]
    pub fn periods(
        &self,
    ) -> Result<(Option<chrono::Duration>, Option<chrono::Duration>), (&'static str, String)> {
        let parse = |key: &'static str, v: &Option<Spanned<String>>| {
            v.as_ref()
                .map(|v| crate::duration::parse(v.get_ref()).map_err(|e| (key, e.to_string())))
                .transpose()
        };
        Ok((
            parse("disable_after_inactive", &self.disable_after_inactive)?,
            parse("disable_unreferenced", &self.disable_unreferenced)?,
        ))
    }
}

/// `[store]`: where the credential store is. Absent: SQLite in the state dir.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://USER@HOST:PORT/DB[?sslmode=…&sslrootcert=…]`, or `env:VAR` to read it from
    /// the environment (so a password stays out of the file).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
}

impl StoreSection {
    /// The URL, with `env:VAR` resolved. `Ok(None)`: no `[store] url`.
    pub fn resolved_url(&self) -> Result<Option<String>, String> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        resolve_store_url(url.get_ref()).map(Some)
    }
}

/// A `[store] url` value with `env:VAR` read from the environment.
pub fn resolve_store_url(url: &str) -> Result<String, String> {
    match url.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            format!("[store] url = \"env:{var}\" but the environment variable {var} is not set")
        }),
        None => Ok(url.to_string()),
    }
}

/// `[gate]`: listeners and audit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    #[serde(default = "default_listen")]
    pub listen: Spanned<SocketAddr>,
    #[serde(default)]
    pub tls_listen: Option<Spanned<SocketAddr>>,
    #[serde(default)]
    pub admin_listen: Option<Spanned<SocketAddr>>,
    /// Relative paths are under the state dir.
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    #[serde(default)]
    pub audit_failure: AuditFailure,
    #[serde(default)]
    pub audit_durability: AuditDurability,
    /// Server certificate and key for the TLS listener (PEM); issued by the local CA when absent.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Slowloris guard: the whole request head must arrive within this many milliseconds.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Largest accepted request head in bytes (`MAX_HEADER_BYTES_RANGE`).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most header fields in one request (`MAX_HEADERS_RANGE`).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Upstream connect + response-head timeout in milliseconds.
    #[serde(default = "default_upstream_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// This gate's name in its audit events (`node`); default the host name.
    #[serde(default)]
    pub node: Option<String>,
    /// The origin assertion's `iss`; default `https://<tls_listen>` or `http://<listen>`.
    #[serde(default)]
    pub issuer: Option<Spanned<String>>,
    /// `RS256` (default) or `ES256`, for keys created from now on.
    #[serde(default)]
    pub assertion_alg: Option<Spanned<String>>,
    /// Lifetime of one assertion (default 5m).
    #[serde(default)]
    pub assertion_ttl: Option<Spanned<String>>,
    /// Automatic signing-key rotation period (default 6w), or `off`.
    #[serde(default)]
    pub assertion_key_rotation: Option<Spanned<String>>,
    /// How long a new key is published before it signs (default 1h).
    #[serde(default)]
    pub assertion_key_publish_ahead: Option<Spanned<String>>,
    /// How long a superseded key stays published (default 7d).
    #[serde(default)]
    pub assertion_key_overlap: Option<Spanned<String>>,
}

impl Default for GateSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls_listen: None,
            admin_listen: None,
            audit_log: default_audit_log(),
            audit_failure: AuditFailure::default(),
            audit_durability: AuditDurability::default(),
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            upstream_timeout_ms: default_upstream_timeout_ms(),
            node: None,
            issuer: None,
            assertion_alg: None,
            assertion_ttl: None,
            assertion_key_rotation: None,
            assertion_key_publish_ahead: None,
            assertion_key_overlap: None,
        }
    }
}

fn default_listen() -> Spanned<SocketAddr> {
    Spanned::new(0..0, SocketAddr::from(([127, 0, 0, 1], 8080)))
}
fn default_audit_log() -> PathBuf {
    PathBuf::from("audit.jsonl")
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_headers() -> usize {
    100
}
/// `max_header_bytes` bounds: hyper's smallest read buffer, and 1 MiB per connection at most.
pub const MAX_HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 8192..=1024 * 1024;
/// `max_headers` bounds: room for the usual dozen, and a cap on per-request parser memory.
pub const MAX_HEADERS_RANGE: std::ops::RangeInclusive<usize> = 16..=1000;
/// Longest `[gate] node` name.
pub const MAX_NODE_LEN: usize = 64;

/// A character a node name may hold: `A-Z a-z 0-9 . _ -`.
fn node_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Whether `name` can be a node name: 1 to 64 node characters.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NODE_LEN && name.chars().all(node_char)
}

/// The default node name: this host's name, with anything a node name cannot hold replaced by
/// `-` (`None` when the system has none).
pub fn host_node_name() -> Option<String> {
    let uname = rustix::system::uname();
    let host = uname.nodename().to_string_lossy();
    let name: String = host
        .chars()
        .map(|c| if node_char(c) { c } else { '-' })
        .take(MAX_NODE_LEN)
        .collect();
    (!name.is_empty()).then_some(name)
}

fn default_true() -> bool {
    true
}

fn default_upstream_timeout_ms() -> u64 {
    30_000
}

/// What the gate does when the audit log cannot be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditFailure {
    #[default]
    FailClosed,
    FailOpen,
}

/// When a response may leave the gate: once the audit batch holding its event was handed to the
/// kernel (`write`: survives a crash of the process), once it was also flushed to the disk
/// (`fsync`: survives a power loss), or at once (`buffered`: a crash loses the events of the
/// batch being written; the behaviour before group commit, for comparison and for those who
/// choose latency over the record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDurability {
    #[default]
    Write,
    Fsync,
    Buffered,
}

/// One `[[app]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub name: Spanned<String>,
    pub hostnames: Vec<Spanned<String>>,
    pub upstream: Spanned<String>,
    /// `https` upstreams: PEM CA certificates trusted instead of the system roots.
    #[serde(default)]
    pub upstream_ca: Option<Spanned<PathBuf>>,
    /// `https` upstreams: the name sent as SNI and verified in the certificate (default the
    /// upstream's host).
    #[serde(default)]
    pub upstream_server_name: Option<Spanned<String>>,
    /// `https` upstreams: the PEM client certificate (chain) shown to the upstream.
    #[serde(default)]
    pub upstream_client_cert: Option<Spanned<PathBuf>>,
    /// `https` upstreams: the PEM private key of `upstream_client_cert`.
    #[serde(default)]
    pub upstream_client_key: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub trusted_cas: Vec<Spanned<String>>,
    /// Send the client certificate upstream (`Cf-Client-Cert-Sha256`, `Cf-Client-Cert-Der-Base64`).
    #[serde(default)]
    pub forward_client_cert: bool,
    /// Send the signed origin assertion (`Cf-Access-Jwt-Assertion`); default on.
    #[serde(default = "default_true")]
    pub assertion: bool,
    /// The assertion's audience tag; default a random tag the store keeps for the app.
    #[serde(default)]
    pub aud: Option<Spanned<String>>,
    #[serde(default)]
    pub policy: Vec<PolicyConfig>,
}

/// One `[[app.policy]]`, tried in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: Spanned<String>,
    pub action: Spanned<Action>,
    #[serde(default)]
    pub include: Vec<Spanned<Selector>>,
    #[serde(default)]
    pub require: Vec<Spanned<Selector>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<Selector>>,
    /// `rate_limit = "600/min"`: each credential this policy admits gets a bucket (GCRA).
    #[serde(default)]
    pub rate_limit: Option<Spanned<String>>,
    /// Requests allowed at once under `rate_limit` (default: its count).
    #[serde(default)]
    pub burst: Option<Spanned<i64>>,
    /// `enforce` (429, the default) or `shadow` (forward, mark the audit event).
    #[serde(default)]
    pub rate_limit_mode: Option<Spanned<crate::bounds::RateLimitMode>>,
}

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Allow requests authenticated with a service token the policy names.
    ServiceAuth,
    /// Allow requests authenticated with a client certificate the policy matches.
    NonIdentity,
    /// Allow (selectors decide; no credential needed unless a selector asks for one).
    Allow,
    /// Deny.
    Block,
    /// Forward without authentication (still audited; `policy check` warns).
    Bypass,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ServiceAuth => "service_auth",
            Action::NonIdentity => "non_identity",
            Action::Allow => "allow",
            Action::Block => "block",
            Action::Bypass => "bypass",
        }
    }
}

/// One selector: a table with exactly one key, e.g. `{ service_token = "ci-deploy-prod" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selector {
    ServiceToken(String),
    AnyServiceToken(bool),
    ValidCertificate(bool),
    /// Regex, full match.
    CommonName(String),
    Issuer(String),
    Organization(String),
    CertCountry(OneOrMany),
    /// CIDR list.
    Ip(OneOrMany),
    /// ISO 3166 alpha-2 codes.
    Country(OneOrMany),
    Everyone(bool),
    /// DNS SANs: exact names (case-insensitive) or `{ regex = "…" }` (full match).
    SanDns(NameMatch),
    /// URI SANs: exact or `{ regex = "…" }`.
    SanUri(NameMatch),
    /// Email (RFC 822) SANs: exact or `{ regex = "…" }`.
    SanEmail(NameMatch),
    /// IP SANs: addresses or CIDRs.
    SanIp(NameMatch),
    /// SPIFFE IDs: exact IDs or `{ prefix = "spiffe://trust-domain[/path]" }`.
    SpiffeId(NameMatch),
    /// SHA-256 (hex) of the certificate's SubjectPublicKeyInfo: a key pin.
    SpkiSha256(OneOrMany),
    /// An OIDC workload token from `issuer` (an `[[oidc_issuer]]` name) whose claims match.
    Oidc(OidcSelector),
    /// OIDC claims that must match (any issuer): `{ oidc_claim = { ref = "refs/heads/main" } }`.
    OidcClaim(std::collections::BTreeMap<String, ClaimValue>),
}

/// `{ oidc = { issuer = "github", claims = { repository = "example/api" } } }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSelector {
    pub issuer: String,
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, ClaimValue>,
}

impl OidcSelector {
    /// `oidc github: repository = "example/api", ref = …` as a reader would say it.
    pub fn describe(&self) -> String {
        match self.claims.is_empty() {
            true => format!("oidc {} (any workload)", self.issuer),
            false => format!("oidc {}: {}", self.issuer, describe_claims(&self.claims)),
        }
    }
}

/// Claims as written: `repository = "example/api", ref = "refs/heads/main"`.
pub fn describe_claims(claims: &std::collections::BTreeMap<String, ClaimValue>) -> String {
    claims
        .iter()
        .map(|(k, v)| format!("{k} = {:?}", v.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A claim value as written: a string (exact, or `^…$` for a full-match regex), an integer or
/// a boolean (compared as its JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimValue(pub String);

impl<'de> Deserialize<'de> for ClaimValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ClaimValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string (exact, or \"^…$\" for a regex), an integer or a boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ClaimValue, E> {
                Ok(ClaimValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Selector {
    /// The selector's key as written in the file.
    pub fn key(&self) -> &'static str {
        match self {
            Selector::ServiceToken(_) => "service_token",
            Selector::AnyServiceToken(_) => "any_service_token",
            Selector::ValidCertificate(_) => "valid_certificate",
            Selector::CommonName(_) => "common_name",
            Selector::Issuer(_) => "issuer",
            Selector::Organization(_) => "organization",
            Selector::CertCountry(_) => "cert_country",
            Selector::Ip(_) => "ip",
            Selector::Country(_) => "country",
            Selector::Everyone(_) => "everyone",
            Selector::SanDns(_) => "san_dns",
            Selector::SanUri(_) => "san_uri",
            Selector::SanEmail(_) => "san_email",
            Selector::SanIp(_) => "san_ip",
            Selector::SpiffeId(_) => "spiffe_id",
            Selector::SpkiSha256(_) => "spki_sha256",
            Selector::Oidc(_) => "oidc",
            Selector::OidcClaim(_) => "oidc_claim",
        }
    }
}

/// A string or a list of strings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// How a SAN or SPIFFE selector names its values: exact values (a string or a list of strings),
/// `{ regex = "…" }` (one pattern, full match) or `{ prefix = "…" }` (a SPIFFE ID path prefix).
/// Which forms a selector accepts is checked by `config::values`, with the selector's span.
#[derive(Debug, Clone, PartialEq)]
pub enum NameMatch {
    Exact(OneOrMany),
    Regex(String),
    Prefix(String),
}

impl NameMatch {
    /// The values as a reader would say them: `a,b`, `~ PATTERN` or `under PREFIX`.
    pub fn describe(&self) -> String {
        match self {
            NameMatch::Exact(v) => v.values().join(","),
            NameMatch::Regex(p) => format!("~ {p}"),
            NameMatch::Prefix(p) => format!("under {p}"),
        }
    }
}

impl<'de> Deserialize<'de> for NameMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NameMatchVisitor)
    }
}

struct NameMatchVisitor;

impl<'de> serde::de::Visitor<'de> for NameMatchVisitor {
    type Value = NameMatch;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            r#"a string, a list of strings, { regex = "PATTERN" } or { prefix = "spiffe://…" }"#,
        )
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NameMatch, E> {
        Ok(NameMatch::Exact(OneOrMany::One(v.to_string())))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NameMatch, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<String>()? {
            out.push(v);
        }
        Ok(NameMatch::Exact(OneOrMany::Many(out)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NameMatch, A::Error> {
        use serde::de::Error;
        const FORMS: &[&str] = &["regex", "prefix"];
        let Some(key) = map.next_key::<String>()? else {
            return Err(A::Error::custom(
                r#"empty table: write { regex = "PATTERN" } or { prefix = "spiffe://…" }"#,
            ));
        };
        let value: String = map.next_value()?;
        let out = match key.as_str() {
            "regex" => NameMatch::Regex(value),
            "prefix" => NameMatch::Prefix(value),
            other => return Err(A::Error::unknown_field(other, FORMS)),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom(
                "write exactly one of `regex` or `prefix` in the table",
            ));
        }
        Ok(out)
    }
}

/// `[inventory]`: directories of certificates to watch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySection {
    #[serde(default)]
    pub watch: Vec<PathBuf>,
}

/// `[geo]`: IP → country database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoSection {
    pub csv: Option<PathBuf>,
    pub mmdb: Option<PathBuf>,
}

/// `[rotation]`: cadence defaults and per-name-pattern overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationSection {
    pub token_cadence: Option<String>,
    pub cert_cadence: Option<String>,
    #[serde(default)]
    pub cadence: Vec<toml::Table>,
}
