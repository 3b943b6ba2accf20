//! `botgate ca init|trust|list|crl`.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CertRef, key_algorithm, pki_err, record_admin, rfc3339, store_err};
use crate::cli::CaCommand;
use crate::commands::{print_json, print_table};
use crate::paths::Paths;
use crate::pki::{self, CaInitOptions};
use crate::store::Store;
use crate::store::pki::CaRecord;

/// File name of the root certificate `ca init` publishes in the state dir.
const ROOT_CERT_FILE: &str = crate::gate::store_tls::LOCAL_ROOT_CERT_FILE;

pub fn run(paths: &Paths, store: &Store, now: DateTime<Utc>, cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Init {
            name,
            key_type,
            root_key_out,
            json,
        } => {
            let opts = CaInitOptions {
                name,
                key: key_algorithm(key_type),
                root_key_out,
                now,
            };
            let made = pki::init_ca(store, &opts).map_err(pki_err)?;
            // The root certificate (public) where clients can find it to verify the gate's HTTPS.
            let root_pem = paths.state_dir.join(ROOT_CERT_FILE);
            std::fs::write(&root_pem, &made.root.cert_pem)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", root_pem.display()))?;
            // Publish an (empty) CRL right away so the gate has one for the issuing CA.
            let crl = pki::issue_crl(store, now).map_err(pki_err)?;
            let details = serde_json::json!({
                "root": made.root.name, "intermediate": made.intermediate.name, "key_type": opts.key.label(),
                "root_fingerprint_sha256": made.root.fingerprint_sha256, "root_key_offline": made.root_key_written_to.is_some(),
            });
            record_admin(
                paths,
                store,
                now,
                "ca_init",
                &made.root.name,
                details,
                CertRef::default(),
            );
            if json.json {
                return print_json(&serde_json::json!({
                    "root": CaView::new(&made.root, now),
                    "intermediate": CaView::new(&made.intermediate, now),
                    "root_key_file": made.root_key_written_to,
                    "root_cert_file": root_pem,
                    "crl_number": crl.crl_number,
                }));
            }
            println!(
                "created root CA {:?} ({}), valid until {}",
                made.root.name,
                opts.key.label(),
                rfc3339(made.root.not_after)
            );
            println!("  SHA-256 {}", made.root.fingerprint_sha256);
            println!(
                "  certificate in {} (give it to clients: curl --cacert)",
                root_pem.display()
            );
            match &made.root_key_written_to {
                Some(p) => println!(
                    "  root key written to {} (mode 0600) and NOT kept in the state dir; store it offline",
                    p.display()
                ),
                None => {
                    match store.file() {
                        Some(file) => {
                            println!("  root key kept in {} (mode 0600)", file.display())
                        }
                        None => println!("  root key kept in the {}", store.describe()),
                    }
                    eprintln!(
                        "warning: the root CA key is on this host; pass --root-key-out FILE at init to keep it offline"
                    );
                }
            }
            println!(
                "created issuing CA {:?}, valid until {}",
                made.intermediate.name,
                rfc3339(made.intermediate.not_after)
            );
            println!("  SHA-256 {}", made.intermediate.fingerprint_sha256);
            println!();
            println!(
                "Trust it per app with trusted_cas = [{:?}] in the policy file.",
                made.root.name
            );
            println!("Issue client certificates with `botgate cert issue --cn NAME`.");
            Ok(())
        }
        CaCommand::Trust {
            pem_file,
            name,
            crl,
            json,
        } => {
            let (chain, rows) =
                pki::trust_ca(store, &name, &pem_file, crl.as_deref(), now).map_err(pki_err)?;
            let top = &chain.certs[0];
            let details = serde_json::json!({
                "file": pem_file, "certificates": rows.iter().map(|r| &r.subject).collect::<Vec<_>>(),
                "fingerprint_sha256": top.fingerprint_sha256, "crl_file": crl,
            });
            let cert = CertRef {
                common_name: top.common_name.as_deref(),
                serial: Some(&top.serial_hex),
                fingerprint: Some(&top.fingerprint_sha256),
                issuer: Some(&top.issuer),
            };
            record_admin(paths, store, now, "ca_trust", &name, details, cert);
            if json.json {
                return print_json(&rows.iter().map(|r| CaView::new(r, now)).collect::<Vec<_>>());
            }
            for (row, c) in rows.iter().zip(&chain.certs) {
                println!(
                    "trusted {:?}: {} ({}), expires {} ({})",
                    row.name,
                    c.subject,
                    c.key_type,
                    rfc3339(c.not_after),
                    crate::duration::countdown(c.not_after - now)
                );
                println!("  SHA-256 {}", c.fingerprint_sha256);
            }
            if let Some(crl) = &crl {
                println!(
                    "CRL file {} is loaded by the gate and re-read when it changes",
                    crl.display()
                );
            }
            println!("Use it per app with trusted_cas = [{name:?}] in the policy file.");
            println!("note: {}.", pki::verify::V1_ADVICE);
            Ok(())
        }
        CaCommand::List(json) => {
            let cas = crate::store::wait(store.list_cas()).map_err(store_err)?;
            if json.json {
                return print_json(&cas.iter().map(|c| CaView::new(c, now)).collect::<Vec<_>>());
            }
            if cas.is_empty() {
                println!(
                    "no CAs yet; create botgate's own with `botgate ca init` or trust one with `botgate ca trust FILE --name NAME`"
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = cas
                .iter()
                .map(|c| {
                    let v = CaView::new(c, now);
                    vec![
                        v.name.into(),
                        v.kind.into(),
                        v.subject.into(),
                        v.expires_in,
                        v.key.into(),
                        v.crl,
                        v.fingerprint_sha256.into(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "KIND",
                    "SUBJECT",
                    "EXPIRES IN",
                    "KEY",
                    "CRL",
                    "SHA-256",
                ],
                &rows,
            )?;
            if crate::store::wait(store.root_key_on_host()).map_err(store_err)? {
                eprintln!(
                    "warning: the root CA key is in the state dir; keep roots offline (`ca init --root-key-out FILE`)"
                );
            }
            Ok(())
        }
        CaCommand::Crl { out } => {
            let crl = pki::issue_crl(store, now).map_err(pki_err)?;
            let details = serde_json::json!({ "ca": crl.ca_name, "crl_number": crl.crl_number, "revoked": crl.revoked, "out": out });
            record_admin(
                paths,
                store,
                now,
                "ca_crl",
                &crl.ca_name,
                details,
                CertRef::default(),
            );
            match &out {
                Some(path) => {
                    std::fs::write(path, &crl.pem)
                        .with_context(|| format!("cannot write the CRL to {}", path.display()))?;
                    eprintln!(
                        "wrote CRL #{} of {:?} to {} ({} revoked, next update {})",
                        crl.crl_number,
                        crl.ca_name,
                        path.display(),
                        crl.revoked,
                        rfc3339(crl.next_update)
                    );
                }
                None => print!("{}", crl.pem),
            }
            Ok(())
        }
    }
}

/// A CA as `ca list` presents it.
#[derive(Debug, Serialize)]
struct CaView<'a> {
    name: &'a str,
    kind: &'static str,
    subject: &'a str,
    fingerprint_sha256: &'a str,
    not_after: String,
    expires_in_seconds: i64,
    key_type: Option<&'a str>,
    /// "on host", "offline" (local root moved out) or "none" (trusted external CA).
    key: &'static str,
    crl_file: Option<&'a str>,
    crl_next_update: Option<String>,
    cert_pem: &'a str,
    #[serde(skip)]
    expires_in: String,
    #[serde(skip)]
    crl: String,
}

impl<'a> CaView<'a> {
    fn new(c: &'a CaRecord, now: DateTime<Utc>) -> Self {
        use crate::store::pki::CaKind;
        let key = match (c.kind, c.key_on_host()) {
            (_, true) => "on host",
            (CaKind::Trusted, false) => "none",
            (_, false) => "offline",
        };
        let crl = match (&c.crl_path, c.crl_next_update) {
            (Some(p), _) => format!("file {p}"),
            (None, Some(next)) if next <= now => "STALE".to_string(),
            (None, Some(next)) => {
                format!("next update in {}", crate::duration::countdown(next - now))
            }
            (None, None) => "-".to_string(),
        };
        Self {
            name: &c.name,
            kind: c.kind.as_str(),
            subject: &c.subject,
            fingerprint_sha256: &c.fingerprint_sha256,
            not_after: rfc3339(c.not_after),
            expires_in_seconds: (c.not_after - now).num_seconds(),
            key_type: c.key_type.as_deref(),
            key,
            crl_file: c.crl_path.as_deref(),
            crl_next_update: c.crl_next_update.map(rfc3339),
            cert_pem: &c.cert_pem,
            expires_in: crate::duration::countdown(c.not_after - now),
            crl,
        }
    }
}
