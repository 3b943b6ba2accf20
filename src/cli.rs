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
    /// Find leaked botgate secrets in files; exits 1 if any.
    Scan(ScanArgs),
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
    #[arg(long, value_name = "URL", conflicts_with = "log")]
    pub attach: Option<String>,
    /// Theme name (themes/ or the config dir) or path to a theme file.
    #[arg(long, env = "BOTGATE_THEME")]
    pub theme: Option<String>,
    /// Disable every action that changes state.
    #[arg(long)]
    pub read_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed once (or written to --secret-out).
    Create(TokenCreateArgs),
    /// List tokens with expiry countdowns.
    List(JsonFlag),
    /// Show one token.
    Show {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke a token by name or client id.
    Revoke {
        name_or_client_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
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
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `--json` for any listing verb.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum KeyType {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-4096")]
    Rsa4096,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root CA and an intermediate that issues client certs.
    Init {
        #[arg(long, default_value = "botgate Root CA")]
        name: String,
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
        pem_file: PathBuf,
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
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a client certificate (from a CSR or with a new key).
    Issue {
        #[arg(long)]
        cn: String,
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
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
        serial_or_cn: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke a certificate (takes effect at the running gate within 1 s).
    Revoke {
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
    #[arg(long, conflicts_with = "cert", required_unless_present = "cert")]
    pub token: Option<String>,
    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
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
        id: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Perform the next step of a rotation.
    Next {
        id: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Abort a rotation.
    Abort {
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum RotateTarget {
    Token {
        name: String,
        #[command(flatten)]
        opts: RotateOpts,
        #[arg(long, value_name = "FILE")]
        secret_out: Option<PathBuf>,
    },
    Cert {
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
    #[arg(long, default_value = "1h")]
    pub quiet_period: String,
    #[arg(long, default_value_t = 1)]
    pub min_requests: u64,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Export audit events.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only events newer than this (e.g. 1h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Logpush,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Also scan git history.
    #[arg(long)]
    pub git: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}
