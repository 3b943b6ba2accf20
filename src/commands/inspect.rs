//! `botgate inspect FILE…`: what a certificate, chain, CSR, CRL or key file holds (PEM or DER),
//! like step's `certificate inspect` or `openssl x509 -text`, plus whether a certificate chains
//! to a CA in the store and is revoked. A private key is named as such; its contents never print.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::exit::Failure;
use crate::paths::Paths;
use crate::pki::details::CertDetails;
use crate::pki::inspect::{CertInfo, Item};

/// Larger input is refused before it is read (a certificate bundle is kilobytes).
const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

/// One object of one file, for `--json`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Object {
    Certificate {
        #[serde(flatten)]
        info: Box<CertInfo>,
        #[serde(flatten)]
        details: Box<CertDetails>,
        /// `valid`, `expired`, `not_yet_valid`.
        validity: &'static str,
    },
    Csr(crate::pki::inspect::CsrInfo),
    Crl(crate::pki::CrlInfo),
    PrivateKey {
        encrypted: bool,
    },
    PublicKey,
    Other {
        label: String,
    },
}

#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    objects: Vec<Object>,
}

pub fn run(_paths: &Paths, args: InspectArgs) -> Result<()> {
    let now = Utc::now();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for path in &args.files {
        match inspect_file(path) {
            Ok(objects) => reports.push(FileReport {
                file: path.display().to_string(),
                objects,
            }),
            Err(e) => errors.push(e),
        }
    }
    if args.json.json {
        super::print_json(&reports)?;
    } else {
        for r in &reports {
            print_report(r, now);
        }
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    match errors.len() {
        0 => Ok(()),
        n => Err(Failure::bad_input(format!(
            "{n} of {} file(s) could not be inspected",
            args.files.len()
        ))),
    }
}

fn inspect_file(path: &Path) -> Result<Vec<Object>, String> {
    let what = path.display().to_string();
    let bytes = read_capped(path).map_err(|e| format!("{what}: {e}"))?;
    let items = crate::pki::inspect::inspect(&what, &bytes).map_err(|e| e.to_string())?;
    let now = Utc::now();
    items
        .into_iter()
        .map(|item| {
            Ok(match item {
                Item::Certificate(info) => {
                    let details =
                        CertDetails::from_der(&what, &info.der).map_err(|e| e.to_string())?;
                    let validity = if info.not_after <= now {
                        "expired"
                    } else if info.not_before > now {
                        "not_yet_valid"
                    } else {
                        "valid"
                    };
                    Object::Certificate {
                        info,
                        details: Box::new(details),
                        validity,
                    }
                }
                Item::Csr(c) => Object::Csr(c),
                Item::Crl(c) => Object::Crl(c),
                Item::PrivateKey { encrypted } => Object::PrivateKey { encrypted },
                Item::PublicKey => Object::PublicKey,
                Item::Other { label } => Object::Other { label },
            })
        })
        .collect()
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!(
            "larger than {} MiB; a certificate, CSR, CRL or key file is far smaller",
            MAX_INPUT_BYTES / 1024 / 1024
        ));
    }
    Ok(bytes)
}

fn print_report(r: &FileReport, now: DateTime<Utc>) {
    println!("{}:", r.file);
    let n = r.objects.len();
    for (i, o) in r.objects.iter().enumerate() {
        let pos = if n > 1 {
            format!(" ({} of {n})", i + 1)
        } else {
            String::new()
        };
        match o {
            Object::Certificate {
                info,
                details,
                validity,
            } => print_cert(info, details, validity, &pos, now),
            Object::Csr(c) => {
                println!("  certificate signing request{pos}");
                field("subject", &c.subject);
                field("key", &c.key_type);
            }
            Object::Crl(c) => {
                println!("  certificate revocation list{pos}");
                field("issuer", &c.issuer);
                field("this update", &super::rfc3339(c.this_update));
                match c.next_update {
                    Some(t) if t <= now => {
                        field("next update", &format!("{} (stale)", super::rfc3339(t)))
                    }
                    Some(t) => field("next update", &super::rfc3339(t)),
                    None => field("next update", "none"),
                }
                if let Some(num) = &c.crl_number {
                    field("crl number", num);
                }
                field("revoked", &format!("{} serial(s)", c.revoked_serials.len()));
                for s in &c.revoked_serials {
                    field("", s);
                }
            }
            Object::PrivateKey { encrypted } => {
                let kind = if *encrypted {
                    "an encrypted private key"
                } else {
                    "a private key"
                };
                println!("  {kind}{pos} (contents not shown; keep this file mode 0600)");
            }
            Object::PublicKey => println!("  a public key{pos}"),
            Object::Other { label } => println!("  a PEM block labelled {label:?}{pos}"),
        }
    }
}

fn print_cert(info: &CertInfo, d: &CertDetails, validity: &str, pos: &str, now: DateTime<Utc>) {
    let role = if info.is_ca {
        "CA certificate"
    } else {
        "certificate"
    };
    println!("  {role}{pos}");
    field("subject", &info.subject);
    field("issuer", &info.issuer);
    field("serial", &info.serial_hex);
    let left = match validity {
        "expired" => format!(
            "expired {} ago",
            crate::duration::countdown(now - info.not_after)
        ),
        "not_yet_valid" => format!(
            "not yet valid, starts in {}",
            crate::duration::countdown(info.not_before - now)
        ),
        _ => format!("{} left", crate::duration::countdown(info.not_after - now)),
    };
    field(
        "validity",
        &format!(
            "{} → {} ({left})",
            super::rfc3339(info.not_before),
            super::rfc3339(info.not_after)
        ),
    );
    field("key", &info.key_type);
    field("signature", &d.signature_algorithm);
    if d.version < 3 {
        field(
            "version",
            &format!(
                "{} (warning: X.509 v{} carries no extensions: no SAN, no extended key usage; issue v3 with `botgate cert issue --csr FILE`)",
                d.version, d.version
            ),
        );
    } else {
        field("version", "3");
    }
    if !d.san.is_empty() {
        field("san", &d.san.join(", "));
    }
    if let Some(id) = &d.spiffe_id {
        field("spiffe id", id);
    }
    if !d.extended_key_usage.is_empty() {
        field("ext key usage", &d.extended_key_usage.join(", "));
    }
    if !d.key_usage.is_empty() {
        field("key usage", &d.key_usage.join(", "));
    }
    if let Some(bc) = d.basic_constraints {
        let text = match (bc.ca, bc.path_len) {
            (true, Some(n)) => format!("CA, path length ≤ {n}"),
            (true, None) => "CA".to_string(),
            (false, _) => "not a CA".to_string(),
        };
        field("basic constraints", &text);
    }
    field("sha256", &info.fingerprint_sha256);
    field("spki sha256", &d.spki_sha256);
}

fn field(name: &str, value: &str) {
    println!("    {name:<18} {value}");
}
