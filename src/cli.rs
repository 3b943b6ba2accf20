//! The command line: clap definitions only. Dispatch lives in `commands/`, exit codes in `main`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// botgate: a Zero-Trust gate for non-human clients.
#[derive(Debug, Parser)]
#[command(name = "botgate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after the verb.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// State directory (store, audit log, PKI). Default: the platform data dir.
    #[arg(long, global = true, env = "BOTGATE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Policy file. Default: policy.toml in the platform config dir.
    #[arg(long, global = true, env = "BOTGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything (gate, upstream, simulated bots, console) on a temporary state dir.
    Demo(DemoArgs),
    /// Run the gate headless (plain + TLS listeners, admin listener).
    Serve(ServeArgs),
    /// Open the ops console.
    Console(ConsoleArgs),
    /// Service tokens: create, list, show, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Certificate authorities: create, trust, list, CRL.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Client certificates: issue, list, show, revoke.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Policy file: check, explain.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Credential rotation workflows.
    #[command(subcommand)]
    Rotate(RotateCommand),
    /// Audit log export.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// The credential store: copy the embedded SQLite store into PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Origin assertion signing keys: list, rotate.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// OIDC issuers ([[oidc_issuer]]) and their key sets: list, show, refresh.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// Find leaked botgate secrets in files; exits 1 if any.
    Scan(ScanArgs),
    /// Show what a certificate, chain, CSR, CRL or key file holds (PEM or DER).
    Inspect(InspectArgs),
    /// Check what an SRE checks before going live; exits 1 on any failed check.
    Doctor(JsonFlag),
    /// Print a shell completion script (e.g. `botgate completions bash > /etc/bash_completion.d/botgate`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (botgate.1 and one per subcommand) into a directory.
    Man {
        /// Directory for the pages (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Files to inspect: certificates, chains, CSRs, CRLs, public or private keys.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run without a terminal and print a summary at the end.
    #[arg(long)]
    pub headless: bool,
    /// Stop after this many seconds (default: until quit; 30 s when headless).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Console theme.
    #[arg(long, env = "BOTGATE_THEME")]
    pub theme: Option<String>,
    /// Multiply every simulated bot's request rate (1 = the realistic scenario; `inf` sends as
    /// fast as the gate answers, to load the console).
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = positive_multiplier, allow_negative_numbers = true)]
    pub rate_multiplier: f64,
}

/// `--rate-multiplier`: a number greater than 0 (`inf` allowed).
fn positive_multiplier(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number; use e.g. 1, 2.5, 50 or inf"))?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(format!(
            "{s} must be greater than 0 (1 is the realistic rate, 50 is fifty times faster)"
        ))
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Also open the console on the in-process event bus.
    #[arg(long)]
    pub console: bool,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Tail a JSONL audit log written by another process.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Follow a running gate's `/events` (server-sent events), e.g. http://127.0.0.1:9901/events.
    /// Repeat to merge several gates (each event names its gate: `node`; filter `node:NAME`).
    #[arg(long, value_name = "URL", conflicts_with = "log")]
    pub attach: Vec<String>,
    /// Theme name (themes/ or the config dir) or path to a theme file.
    #[arg(long, env = "BOTGATE_THEME")]
    pub theme: Option<String>,
    /// Disable every action that changes state.
    #[arg(long)]
    pub read_only: bool,
    /// Read the log's history from DURATION ago (e.g. 30m, 2h, 1d), found by binary search,
    /// instead of its last 4 MiB; then follow.
    #[arg(long, value_name = "DURATION", value_parser = parse_since, conflicts_with_all = ["all", "attach"])]
    pub since: Option<chrono::Duration>,
    /// Read the whole log from its start (the header shows the progress), then follow.
    #[arg(long, conflicts_with = "attach")]
    pub all: bool,
    /// Events kept for the tail, the Log view and the time window's tables (default 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub ring: Option<u64>,
}

/// `--since DURATION`: the duration grammar of `--ttl` and friends.
fn parse_since(text: &str) -> Result<chrono::Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed once (or written to --secret-out).
    Create(TokenCreateArgs),
    /// List tokens with expiry countdowns.
    List(JsonFlag),
    /// Show one token.
    Show {
        /// Token name.
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke a token by name or client id.
    Revoke {
        /// Token name or Client ID (`<32 hex>.access`).
        name_or_client_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Refuse a token (401 token_disabled) without revoking it; `enable` lifts it.
    Disable {
        /// Token name or Client ID (`<32 hex>.access`).
        name_or_client_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Accept a disabled token again.
    Enable {
        /// Token name or Client ID (`<32 hex>.access`).
        name_or_client_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// A new secret for the same Client ID; the previous one keeps working for --grace.
    RotateSecret(TokenRotateSecretArgs),
    /// Change a token's bounds: the networks it may be used from, its rate limit.
    Update(TokenUpdateArgs),
    /// Extend a token's expiry to DURATION from now (same Client ID and secret).
    Refresh {
        /// Token name or Client ID (`<32 hex>.access`).
        name_or_client_id: String,
        /// New lifetime from now: 30d, 90d, 1y … (default 90d).
        #[arg(long, default_value = "90d")]
        duration: String,
        /// Allow a lifetime longer than one year.
        #[arg(long)]
        allow_long: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct TokenRotateSecretArgs {
    /// Token name or Client ID (`<32 hex>.access`).
    pub name_or_client_id: String,
    /// How long the previous secret is still accepted, 1h to 30d (default 24h); after it the
    /// previous secret is refused as token_secret_superseded.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub grace: String,
    /// Write {"name","client_id","client_secret","expires_at",…} to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "end_grace")]
    pub secret_out: Option<PathBuf>,
    /// Issue no secret: refuse the previous secret from now on (end its grace early).
    #[arg(long)]
    pub end_grace: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Token name, `<team>-<purpose>-<env>` (e.g. ci-deploy-prod).
    pub name: String,
    /// Lifetime: 12h, 30d, 90d, 1y … (default 1y).
    #[arg(long, default_value = "1y")]
    pub duration: String,
    /// Allow a lifetime longer than one year.
    #[arg(long)]
    pub allow_long: bool,
    /// Write {"name","client_id","client_secret","expires_at"} to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub secret_out: Option<PathBuf>,
    /// Accept the token only from this network (CIDR or address; repeat for more). From
    /// anywhere else it is refused (401 token_ip_not_allowed), whatever the policies say.
    #[arg(long = "allow-ip", value_name = "CIDR")]
    pub allow_ip: Vec<String>,
    /// The token's own rate limit on every app: COUNT/UNIT (600/min, 10/s, 5000/h, 1/d).
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Requests allowed at once under --rate (default: its count).
    #[arg(
        long,
        value_name = "N",
        requires = "rate",
        allow_negative_numbers = true
    )]
    pub burst: Option<i64>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub struct TokenUpdateArgs {
    /// Token name or Client ID (`<32 hex>.access`).
    pub name_or_client_id: String,
    /// Replace the token's networks with these (CIDR or address; repeat for more).
    #[arg(
        long = "allow-ip",
        value_name = "CIDR",
        conflicts_with = "clear_allow_ip"
    )]
    pub allow_ip: Vec<String>,
    /// Accept the token from anywhere again.
    #[arg(long)]
    pub clear_allow_ip: bool,
    /// Replace the token's rate limit: COUNT/UNIT (600/min, 10/s, 5000/h, 1/d).
    #[arg(long, value_name = "RATE", conflicts_with = "clear_rate")]
    pub rate: Option<String>,
    /// Requests allowed at once under --rate (default: its count).
    #[arg(
        long,
        value_name = "N",
        requires = "rate",
        allow_negative_numbers = true
    )]
    pub burst: Option<i64>,
    /// Remove the token's own rate limit (policies' limits still apply).
    #[arg(long)]
    pub clear_rate: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

// `--json`, flattened into every listing verb. (No doc comment: clap would take it as the
// description of any subcommand that flattens this struct without one of its own.)
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 (fast handshakes, small certificates).
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// RSA with a 2048-bit modulus.
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA with a 4096-bit modulus.
    #[value(name = "rsa-4096")]
    Rsa4096,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root CA and an intermediate that issues client certs.
    Init {
        /// The root CA's name (its subject CN); the intermediate is named after it.
        #[arg(long, default_value = "botgate Root CA")]
        name: String,
        /// Key type of the root and the intermediate.
        #[arg(long, value_enum, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Write the root key here and remove it from the state dir (keeps the root offline).
        #[arg(long, value_name = "FILE")]
        root_key_out: Option<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Trust an existing root CA (or chain) from a PEM file.
    Trust {
        /// PEM file with the CA certificate (or its chain, root last).
        pem_file: PathBuf,
        /// Name to refer to this CA by in `trusted_cas` (e.g. "Corporate Device CA").
        #[arg(long)]
        name: String,
        /// An external CRL file (PEM or DER) published by this CA; the gate re-reads it on change.
        #[arg(long, value_name = "FILE")]
        crl: Option<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List trusted CAs.
    List(JsonFlag),
    /// Write the current CRL (PEM).
    Crl {
        /// Write the CRL to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a client certificate (from a CSR or with a new key).
    Issue {
        /// Common name of the client (e.g. device-0042.factory.corp).
        #[arg(long)]
        cn: String,
        /// Sign this CSR (PEM or DER) instead of generating a key; the key never leaves the client.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Directory for the certificate, chain and key (created, mode 0700, when missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Key type of a generated key (ignored with --csr).
        #[arg(long, value_enum, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// A subject alternative name, repeatable: `DNS:`, `URI:`, `email:` or `IP:` prefixed, or
        /// inferred (an IP, `x@y` an email, `scheme://…` a URI, else a DNS name), e.g.
        /// `--san spiffe://example.org/ns/prod/sa/deployer`.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// The certificate inventory.
    List(JsonFlag),
    /// Show one certificate.
    Show {
        /// Serial (hex), SHA-256 fingerprint or common name.
        serial_or_cn: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke a certificate (takes effect at the running gate within 1 s).
    Revoke {
        /// Serial (hex), SHA-256 fingerprint or common name.
        serial_or_cn: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate and lint the policy file.
    Check(JsonFlag),
    /// Show which policy decides for a credential and why.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Application hostname.
    #[arg(long)]
    pub app: String,
    /// Token name.
    #[arg(long, conflicts_with_all = ["cert", "jwt"], required_unless_present_any = ["cert", "jwt"])]
    pub token: Option<String>,
    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE", conflicts_with = "jwt")]
    pub cert: Option<PathBuf>,
    /// An OIDC workload token (a file holding the JWT; `-` reads stdin). It is verified as
    /// the gate verifies it (signature, iss, aud, exp/nbf/iat) and never printed.
    #[arg(long, value_name = "FILE")]
    pub jwt: Option<PathBuf>,
    /// Client IP address.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// Client country (ISO code).
    #[arg(long)]
    pub country: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Start a rotation (step 1: create the new credential).
    Start {
        #[command(subcommand)]
        target: RotateTarget,
    },
    /// Show rotations and their evidence.
    Status {
        /// Rotation id (default: all rotations).
        id: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Perform the next step of a rotation.
    Next {
        /// Rotation id (from `rotate start` or `rotate status`).
        id: String,
        /// Revoke the old credential although traffic has not yet proven it unused.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Abort a rotation.
    Abort {
        /// Rotation id.
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum RotateTarget {
    /// Rotate a service token: mint its successor, then retire it once traffic moved.
    Token {
        /// Name of the token to rotate.
        name: String,
        #[command(flatten)]
        opts: RotateOpts,
        /// Write the new token's {"name","client_id","client_secret","expires_at"} to FILE (0600).
        #[arg(long, value_name = "FILE")]
        secret_out: Option<PathBuf>,
        /// Keep the Client ID: a new secret for the same token (clients change one value,
        /// policies stay); revoke then ends the previous secret instead of the token.
        #[arg(long)]
        in_place: bool,
        /// With --in-place: how long the previous secret is accepted at most, 1h to 30d.
        #[arg(
            long,
            value_name = "DURATION",
            default_value = "24h",
            requires = "in_place"
        )]
        grace: String,
    },
    /// Rotate a client certificate: issue its successor, then revoke it once traffic moved.
    Cert {
        /// Common name of the certificate to rotate.
        cn: String,
        #[command(flatten)]
        opts: RotateOpts,
        /// Directory for the new certificate chain and key (default: <state dir>/rotations).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Issue the new certificate for this CN instead of the old one; add names it beside
        /// every common_name selector that names the old CN exactly.
        #[arg(long, value_name = "CN")]
        new_cn: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RotateOpts {
    /// How long the old credential must go unseen before it may be revoked (e.g. 30m, 1h, 2d).
    #[arg(long, default_value = "1h")]
    pub quiet_period: String,
    /// Requests the new credential must have made before the old one may be revoked.
    #[arg(long, default_value_t = 1)]
    pub min_requests: u64,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy this state dir's SQLite store (tokens, CAs with their keys, certificates,
    /// revocations, rotations, admin journal) into an empty PostgreSQL database.
    Copy {
        /// The target: postgres://USER@HOST:PORT/DB (or env:VAR to read it from VAR).
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Every [[oidc_issuer]]: its key set's age, key ids, last refresh and failures (from the
    /// gate's state files in the state dir).
    List {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// One issuer: settings, where its keys come from, each key, the last attempt.
    Show {
        /// The issuer's name (`name = …` in [[oidc_issuer]]).
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Fetch the issuer's key set now and keep it in the state dir; a running gate on this
    /// state dir takes it within seconds. Exits 1 when the fetch fails.
    Refresh {
        /// The issuer's name (`name = …` in [[oidc_issuer]]).
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The keys that sign Cf-Access-Jwt-Assertion: kid, algorithm, created, state
    /// (next / active / retiring) and when each moves on.
    List {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Publish a new signing key now; gates sign with it after --publish-ahead, and the
    /// current key stays published for the overlap ([gate] assertion_key_overlap, 7d).
    Rotate {
        /// How long the new key is in the key set before it signs, so verifiers that cache
        /// the key set hold it by then (e.g. 1h, 10m; default [gate] assertion_key_publish_ahead).
        #[arg(long, value_name = "DURATION")]
        publish_ahead: Option<String>,
        /// RS256 or ES256 (default [gate] assertion_alg, RS256).
        #[arg(long, value_name = "ALG")]
        alg: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Export audit events.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only events newer than this (e.g. 1h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Cloudflare Logpush "Access requests" field names, one JSON object per line.
    Logpush,
    /// botgate's own audit event, one JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan (directories recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Also scan git history.
    #[arg(long)]
    pub git: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}
