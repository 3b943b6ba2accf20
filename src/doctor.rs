//! `botgate doctor`: the checks an SRE runs before going live, each one line with ok / warn /
//! fail and what to do. Read-only except that opening the store applies pending migrations (as
//! every verb does) and the audit-log check may create an empty temporary file beside the log.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::LoadedConfig;
use crate::expiry::CredentialStatus;
use crate::paths::Paths;
use crate::store::tokens::{CRITICAL_WITHIN_DAYS, EXPIRING_WITHIN_DAYS};
use crate::store::{STORE_FILE, Store};

/// Free space below this on the audit log's file system is a failure.
const DISK_FAIL_BYTES: u64 = 100 * 1024 * 1024;
/// Free space below this is a warning.
const DISK_WARN_BYTES: u64 = 1024 * 1024 * 1024;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. "policy file", "port 127.0.0.1:8080 (listen)".
    pub check: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (absent when ok).
    pub fix: Option<String>,
}

impl Check {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Run every check at `now`.
pub fn run(paths: &Paths, now: DateTime<Utc>) -> Vec<Check> {
    let mut out = Vec::new();
    let config = policy_file(paths, &mut out);
    // Before the store opens: opening it tightens the store file's mode itself.
    modes(paths, config.as_ref(), &mut out);
    let store = store(paths, &mut out);
    if let Some(store) = &store {
        root_key(store, &mut out);
    }
    if let Some(config) = &config {
        ports(config, &mut out);
        tls_server(paths, config, store.as_ref(), now, &mut out);
        audit_log(paths, config, &mut out);
    }
    if let Some(store) = &store {
        crls(store, now, &mut out);
        clock(store, now, &mut out);
        expiring(store, now, &mut out);
    }
    out
}

fn policy_file(paths: &Paths, out: &mut Vec<Check>) -> Option<LoadedConfig> {
    let name = "policy file";
    match crate::config::load(&paths.config) {
        Ok(loaded) => {
            let apps = loaded.file.app.len();
            let detail = match loaded.warnings.len() {
                0 => format!("{}: valid, {apps} app(s)", paths.config.display()),
                n => format!(
                    "{}: valid, {apps} app(s), {n} warning(s) (see `botgate policy check`)",
                    paths.config.display()
                ),
            };
            out.push(Check::ok(name, detail));
            Some(loaded)
        }
        Err(e) => {
            let first = e
                .findings()
                .first()
                .map(|f| f.to_string())
                .unwrap_or_else(|| e.to_string());
            out.push(Check::fail(
                name,
                first,
                "fix the file (`botgate policy check` lists every finding with file:line)",
            ));
            None
        }
    }
}

fn store(paths: &Paths, out: &mut Vec<Check>) -> Option<Store> {
    let name = "store";
    if let Ok(crate::store::StoreLocation::Url(url)) = paths.store_location() {
        let shown = crate::store::redact_url(&url);
        return match Store::connect(&url) {
            Ok(store) => {
                let version = crate::store::wait(store.schema_version())
                    .map_or_else(|e| format!("unknown ({e})"), |v| v.to_string());
                out.push(Check::ok(
                    name,
                    format!("{} reachable, schema version {version}", store.describe()),
                ));
                Some(store)
            }
            Err(e) => {
                out.push(Check::fail(
                    name,
                    e.to_string(),
                    format!("start the server or fix [store] url / BOTGATE_STORE_URL ({shown})"),
                ));
                None
            }
        };
    }
    let file = paths.state_dir.join(STORE_FILE);
    if !file.exists() {
        out.push(Check::fail(
            name,
            format!("no store at {}", file.display()),
            "create credentials first (`botgate token create` or `botgate ca init`), or pass the gate's --state-dir",
        ));
        return None;
    }
    match Store::open(&paths.state_dir) {
        Ok(store) => {
            let detail = match crate::store::wait(store.schema_version()) {
                Ok(v) => format!("{} opens, schema version {v}", file.display()),
                Err(e) => format!("{} opens, schema version unknown ({e})", file.display()),
            };
            out.push(Check::ok(name, detail));
            Some(store)
        }
        Err(e) => {
            out.push(Check::fail(
                name,
                e.to_string(),
                "check the file's owner and mode, and that no other program holds it",
            ));
            None
        }
    }
}

/// Group- or world-accessible state dir, store, TLS key or key files in the state dir.
fn modes(paths: &Paths, config: Option<&LoadedConfig>, out: &mut Vec<Check>) {
    let mut sensitive: Vec<(PathBuf, &str)> = vec![(paths.state_dir.clone(), "state dir")];
    for suffix in ["", "-wal", "-shm"] {
        sensitive.push((
            paths.state_dir.join(format!("{STORE_FILE}{suffix}")),
            "store (token hashes, CA keys)",
        ));
    }
    if let Some(key) = config.and_then(|c| c.file.gate.tls_key.as_ref()) {
        sensitive.push((paths.in_state_dir(key), "[gate] tls_key"));
    }
    for key in key_files(&paths.state_dir) {
        sensitive.push((key, "private key"));
    }
    let mut loose = Vec::new();
    let mut checked = 0;
    for (path, what) in &sensitive {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        checked += 1;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            loose.push(format!("{what} {} is mode {mode:04o}", path.display()));
        }
    }
    if loose.is_empty() {
        out.push(Check::ok(
            "file modes",
            format!("{checked} sensitive path(s), none readable by group or others"),
        ));
    } else {
        for l in loose {
            out.push(Check::fail(
                "file modes",
                l,
                "chmod 0600 for files, 0700 for the state dir (only the gate's user may read them)",
            ));
        }
    }
}

/// `*.key` and `*key.pem` files under the state dir (rotations, issued certificates), two levels.
fn key_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 2 {
                dirs.push((path, depth + 1));
            } else if ft.is_file() {
                let name = e.file_name().to_string_lossy().to_lowercase();
                if name.ends_with(".key") || name.ends_with("key.pem") {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

fn root_key(store: &Store, out: &mut Vec<Check>) {
    let name = "root CA key";
    match (crate::store::wait(store.local_root()), crate::store::wait(store.root_key_on_host())) {
        (Ok(None), _) => out.push(Check::ok(name, "no local root CA (trusted CAs only)")),
        (Ok(Some(root)), Ok(true)) => out.push(Check::warn(
            name,
            format!("the key of root CA {:?} is on this host, in the store", root.name),
            "keep the root offline: create the CA with `botgate ca init --root-key-out FILE` and store FILE off this host",
        )),
        (Ok(Some(root)), Ok(false)) => out.push(Check::ok(
            name,
            format!("root CA {:?} key is offline", root.name),
        )),
        (Err(e), _) | (_, Err(e)) => out.push(Check::fail(
            name,
            e.to_string(),
            "the store could not be read",
        )),
    }
}

fn ports(config: &LoadedConfig, out: &mut Vec<Check>) {
    let g = &config.file.gate;
    let mut listeners: Vec<(SocketAddr, &str, &str)> =
        vec![(*g.listen.get_ref(), "listen", "listen")];
    if let Some(a) = &g.tls_listen {
        listeners.push((*a.get_ref(), "tls_listen", "tls_listen"));
    }
    if let Some(a) = &g.admin_listen {
        listeners.push((*a.get_ref(), "admin_listen", "admin_listen"));
    }
    for (addr, what, key) in listeners {
        let name = format!("port {addr} ({what})");
        match TcpListener::bind(addr) {
            Ok(_) => out.push(Check::ok(name, "free")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => out.push(Check::fail(
                name,
                "in use by another process (a gate already running?)",
                format!("stop that process (`ss -ltnp 'sport = :{}'` names it) or change [gate] {key}", addr.port()),
            )),
            Err(e) => out.push(Check::fail(
                name,
                format!("cannot listen: {e}"),
                format!("use an address this host has, or a port ≥ 1024 for an unprivileged user ([gate] {key})"),
            )),
        }
    }
}

fn tls_server(
    paths: &Paths,
    config: &LoadedConfig,
    store: Option<&Store>,
    now: DateTime<Utc>,
    out: &mut Vec<Check>,
) {
    let g = &config.file.gate;
    if g.tls_listen.is_none() {
        return;
    }
    let name = "TLS server certificate";
    if let Some(cert) = &g.tls_cert {
        let path = paths.in_state_dir(cert);
        match crate::pki::inspect::read_certificate_file(&path) {
            Ok(certs) => {
                let Some(leaf) = certs.first() else { return };
                out.push(expiry_check(
                    name,
                    &format!("{} ({})", path.display(), leaf.display_name()),
                    leaf.not_after,
                    now,
                    "renew it and replace [gate] tls_cert / tls_key (the gate reloads them on restart)",
                ));
            }
            Err(e) => out.push(Check::fail(
                name,
                e.to_string(),
                "point [gate] tls_cert at a PEM certificate chain",
            )),
        }
        return;
    }
    match store.map(|s| crate::store::wait(s.issuing_ca())) {
        Some(Ok(Some(ca))) => out.push(expiry_check(
            name,
            &format!("issued at start by the local CA {:?}", ca.name),
            ca.not_after,
            now,
            "the issuing CA itself expires: create a new one with `botgate ca init`",
        )),
        Some(Ok(None)) | None => out.push(Check::warn(
            name,
            "no tls_cert/tls_key and no local issuing CA",
            "run `botgate ca init`, or set [gate] tls_cert and tls_key",
        )),
        Some(Err(e)) => out.push(Check::fail(
            name,
            e.to_string(),
            "the store could not be read",
        )),
    }
}

/// ok / warn / fail for something valid until `not_after`, from the one expiry classifier:
/// warn when it is expiring, fail when critical or expired.
fn expiry_check(
    name: &str,
    what: &str,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    fix: &str,
) -> Check {
    let until = crate::commands::rfc3339(not_after);
    match CredentialStatus::at(not_after, false, now) {
        CredentialStatus::Expired | CredentialStatus::Revoked => {
            Check::fail(name, format!("{what} expired at {until}"), fix)
        }
        CredentialStatus::Critical => Check::fail(
            name,
            format!("{what} expires at {until}, within {CRITICAL_WITHIN_DAYS} days"),
            fix,
        ),
        CredentialStatus::Warn => Check::warn(
            name,
            format!("{what} expires at {until}, within {EXPIRING_WITHIN_DAYS} days"),
            fix,
        ),
        // `at` never says disabled (that is a token flag, not a date).
        CredentialStatus::Ok | CredentialStatus::Disabled => {
            Check::ok(name, format!("{what} valid until {until}"))
        }
    }
}

fn audit_log(paths: &Paths, config: &LoadedConfig, out: &mut Vec<Check>) {
    let name = "audit log";
    let path = paths.in_state_dir(&config.file.gate.audit_log);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let writable = if path.is_dir() {
        Err(format!("{} is a directory", path.display()))
    } else if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map(drop)
            .map_err(|e| format!("cannot append to {}: {e}", path.display()))
    } else {
        // The gate creates missing directories: probe the nearest one that exists.
        let existing = dir
            .ancestors()
            .find(|d| d.is_dir())
            .unwrap_or(Path::new("/"));
        tempfile::NamedTempFile::new_in(existing)
            .map(drop)
            .map_err(|e| format!("cannot create files in {}: {e}", existing.display()))
    };
    if let Err(e) = writable {
        out.push(Check::fail(
            name,
            e,
            "give the gate's user write access to the log and its directory ([gate] audit_log)",
        ));
        return;
    }
    let probe = if path.exists() {
        path.clone()
    } else {
        dir.ancestors()
            .find(|d| d.is_dir())
            .unwrap_or(Path::new("/"))
            .to_path_buf()
    };
    match rustix::fs::statvfs(&probe) {
        Ok(fs) => {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            let detail = format!("{} writable, {} free", path.display(), human_bytes(free));
            let fix = "free space or move [gate] audit_log: the gate fails closed (503) when it cannot write";
            out.push(if free < DISK_FAIL_BYTES {
                Check::fail(name, detail, fix)
            } else if free < DISK_WARN_BYTES {
                Check::warn(name, detail, fix)
            } else {
                Check::ok(name, detail)
            });
        }
        Err(e) => out.push(Check::warn(
            name,
            format!("{} writable; free space unknown ({e})", path.display()),
            "check the file system's free space by hand (`df -h`)",
        )),
    }
}

fn human_bytes(n: u64) -> String {
    const GIB: u64 = 1024 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= GIB {
        format!("{:.1} GiB", n as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    }
}

fn crls(store: &Store, now: DateTime<Utc>, out: &mut Vec<Check>) {
    let cas = match crate::store::wait(store.list_cas()) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                "CRLs",
                e.to_string(),
                "the store could not be read",
            ));
            return;
        }
    };
    let mut any = false;
    for ca in &cas {
        if let Some(file) = &ca.crl_path {
            any = true;
            let name = format!("CRL of {:?}", ca.name);
            match crate::pki::load_crl_file(Path::new(file)) {
                Ok(crl) if crl.is_stale(now) => out.push(Check::fail(
                    name,
                    format!("{file} is past its next update"),
                    "fetch the CA's current CRL into that file (the gate re-reads it when it changes)",
                )),
                Ok(_) => out.push(Check::ok(name, format!("{file} is current"))),
                Err(e) => out.push(Check::fail(
                    name,
                    e.to_string(),
                    format!("restore {file} or re-run `botgate ca trust … --crl FILE`"),
                )),
            }
        } else if let Some(next) = ca.crl_next_update {
            any = true;
            let name = format!("CRL of {:?}", ca.name);
            if next <= now {
                out.push(Check::warn(
                    name,
                    format!(
                        "botgate's CRL passed its next update at {}",
                        crate::commands::rfc3339(next)
                    ),
                    "run `botgate ca crl` (a running gate refreshes it on its own)",
                ));
            } else {
                out.push(Check::ok(
                    name,
                    format!("current until {}", crate::commands::rfc3339(next)),
                ));
            }
        }
    }
    if !any {
        out.push(Check::ok("CRLs", "no CRL in use"));
    }
}

/// The clock is not before the newest certificate's not-before (a clock set back makes every
/// new certificate "not yet valid").
fn clock(store: &Store, now: DateTime<Utc>, out: &mut Vec<Check>) {
    let name = "clock";
    let newest = crate::store::wait(store.list_certs())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.not_before, c.common_name))
        .max();
    match newest {
        Some((nb, cn)) if nb > now + Duration::minutes(5) => out.push(Check::fail(
            name,
            format!(
                "now is {} but certificate {cn:?} is valid from {}",
                crate::commands::rfc3339(now),
                crate::commands::rfc3339(nb)
            ),
            "set the clock right (NTP); certificates and tokens are checked against it",
        )),
        _ => out.push(Check::ok(
            name,
            format!(
                "{} (not before any certificate's not-before)",
                crate::commands::rfc3339(now)
            ),
        )),
    }
}

fn expiring(store: &Store, now: DateTime<Utc>, out: &mut Vec<Check>) {
    let critical =
        |at, revoked| CredentialStatus::at(at, revoked, now) == CredentialStatus::Critical;
    let mut found = 0;
    for t in crate::store::wait(store.list_tokens()).unwrap_or_default() {
        if critical(t.expires_at, t.revoked_at.is_some()) {
            found += 1;
            out.push(Check::warn(
                format!("token {}", t.name),
                format!("expires at {}", crate::commands::rfc3339(t.expires_at)),
                format!("rotate it: `botgate rotate start token {}`", t.name),
            ));
        }
    }
    for c in crate::store::wait(store.list_certs()).unwrap_or_default() {
        if critical(c.not_after, c.revoked_at.is_some()) {
            found += 1;
            out.push(Check::warn(
                format!("certificate {}", c.common_name),
                format!(
                    "serial {} expires at {}",
                    c.serial,
                    crate::commands::rfc3339(c.not_after)
                ),
                format!("rotate it: `botgate rotate start cert {}`", c.common_name),
            ));
        }
    }
    if found == 0 {
        out.push(Check::ok(
            "expiring credentials",
            format!("no token or certificate expires within {CRITICAL_WITHIN_DAYS} days"),
        ));
    }
}
