//! Where the shared store is: a `postgres://` URL, checked and split into a connection config,
//! the TLS to use and a name for messages (never the password).

use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// How long connecting may take before the store counts as unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A parsed `[store] url`.
#[derive(Clone)]
pub struct PgLocation {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// `user@host:port/db`, for messages.
    pub target: String,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLocation")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl PgLocation {
    /// Parse `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…&sslrootcert=FILE]`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let shown = redact(url);
        let bad = |why: String| StoreError::Location(format!("[store] url {shown:?}: {why}"));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "must start with postgres:// (e.g. postgres://botgate@db.internal:5432/botgate)"
                    .into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut sslmode = None;
        let mut sslrootcert = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => sslmode = Some(v.to_string()),
                Some(("sslrootcert", v)) => sslrootcert = Some(v.to_string()),
                _ => kept.push(pair),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = rebuilt
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        if config.get_dbname().is_none() {
            return Err(bad(
                "names no database; end it with /DBNAME (e.g. …:5432/botgate)".into(),
            ));
        }
        if config.get_user().is_none() {
            config.user(std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("botgate");
        let tls = match sslmode.as_deref() {
            None | Some("disable") => {
                config.ssl_mode(SslMode::Disable);
                client_tls(rustls::RootCertStore::empty())?
            }
            Some("require" | "verify-full") => {
                let Some(file) = sslrootcert else {
                    return Err(bad(format!(
                        "sslmode={} needs sslrootcert=FILE (the CA that signed the server's certificate); botgate always verifies the server",
                        sslmode.unwrap_or_default()
                    )));
                };
                config.ssl_mode(SslMode::Require);
                client_tls(read_roots(&file).map_err(bad)?)?
            }
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not supported; use disable, require or verify-full"
                )));
            }
        };
        let target = target_of(&config);
        Ok(Self {
            config,
            tls,
            target,
        })
    }
}

fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or_default(),
        config.get_dbname().unwrap_or_default()
    )
}

fn read_roots(file: &str) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(file).map_err(|e| format!("cannot read sslrootcert {file}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {file} is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {file} holds no certificate"));
    }
    Ok(roots)
}

fn client_tls(roots: rustls::RootCertStore) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Location(format!("TLS to the store: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://gate:s3cret@db:5432/botgate?sslmode=disable"),
            "postgres://gate:***@db:5432/botgate?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://gate@db/botgate"),
            "postgres://gate@db/botgate"
        );
        let loc = PgLocation::parse("postgres://gate:s3cret@db:5433/botgate").unwrap();
        assert_eq!(loc.target, "gate@db:5433/botgate");
        assert!(!format!("{loc:?}").contains("s3cret"));
        let err = PgLocation::parse("postgres://gate:s3cret@db:5433/botgate?sslmode=verify-ca")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("verify-ca") && !err.contains("s3cret"),
            "{err}"
        );
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        let e = PgLocation::parse("mysql://x@y/z").unwrap_err().to_string();
        assert!(e.contains("must start with postgres://"), "{e}");
        let e = PgLocation::parse("postgres://x@y:5432")
            .unwrap_err()
            .to_string();
        assert!(e.contains("names no database"), "{e}");
        let e = PgLocation::parse("postgres://x@y/z?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = PgLocation::parse("postgres://x@y/z?sslmode=require&sslrootcert=/nonexistent")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read sslrootcert /nonexistent"), "{e}");
    }
}
