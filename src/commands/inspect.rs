//! `botgate inspect FILE…`: what a certificate, chain, CSR, CRL or key file holds (PEM or DER),
//! like step's `certificate inspect` or `openssl x509 -text`, plus whether a certificate chains
//! to a CA in the store and is revoked — answered by `pki::verify`, the function the gate and
//! `policy explain` use. A private key is named as such; its contents never print.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::exit::Failure;
use crate::paths::Paths;
use crate::pki::details::CertDetails;
use crate::pki::inspect::{CertInfo, Item};
use crate::pki::verify::{Check, Verdict};
use crate::pki::{CertTrust, RevokedCerts, TrustMaterial};

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
        /// The checks against the store's trusted CAs (chain, validity, revocation), when the
        /// certificate is not itself a CA and a store exists; the file's later certificates are
        /// offered as intermediates.
        #[serde(skip_serializing_if = "Option::is_none")]
        trust: Option<TrustReport>,
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

/// What `pki::verify` says of a certificate against every CA the store trusts.
#[derive(Debug, Serialize)]
struct TrustReport {
    /// The trusted CA it chains to.
    anchor: Option<String>,
    checks: Vec<Check>,
    /// `cert_untrusted`, `cert_expired`, `cert_revoked`, `cert_unsupported`; `None` = accepted.
    refused: Option<&'static str>,
}

impl TrustReport {
    fn from_verdict(v: Verdict) -> Self {
        Self {
            anchor: v.anchor,
            checks: v.checks,
            refused: v
                .refusal
                .map(|r| crate::gate::client_auth::deny_reason(r.problem).as_str()),
        }
    }
}

/// The store's trust, read once for all files: `None` when there is no store yet.
struct StoreTrust {
    trust: CertTrust,
    revoked: RevokedCerts,
}

impl StoreTrust {
    fn load(paths: &Paths) -> Result<Option<Self>> {
        // Never create a store just to look at a file.
        if !paths.store_exists()? {
            return Ok(None);
        }
        let store = paths.open_store()?;
        let (material, _): (TrustMaterial, _) = crate::gate::store_tls::trust_material(&store)
            .map_err(|e| anyhow::anyhow!("cannot read the trusted CAs: {e}"))?;
        let names: Vec<String> = material.trusted.keys().cloned().collect();
        let trust = CertTrust::new(&names, &material)?;
        let revoked = crate::gate::snapshot::CredentialSnapshot::load(&store)?.revoked_certs;
        Ok(Some(Self { trust, revoked }))
    }
}

#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    objects: Vec<Object>,
}

pub fn run(paths: &Paths, args: InspectArgs) -> Result<()> {
    let now = Utc::now();
    let trust = StoreTrust::load(paths)?;
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for path in &args.files {
        match inspect_file(path, trust.as_ref(), now) {
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

fn inspect_file(
    path: &Path,
    trust: Option<&StoreTrust>,
    now: DateTime<Utc>,
) -> Result<Vec<Object>, String> {
    let what = path.display().to_string();
    let bytes =
        crate::input::read(path, crate::input::PKI_FILE).map_err(|e| format!("{what}: {e}"))?;
    let items = crate::pki::inspect::inspect(&what, &bytes).map_err(|e| e.to_string())?;
    // The file's certificates in order: a leaf is checked with the ones after it as its chain.
    let ders: Vec<rustls::pki_types::CertificateDer<'static>> = items
        .iter()
        .filter_map(|i| match i {
            Item::Certificate(c) => Some(rustls::pki_types::CertificateDer::from(c.der.clone())),
            _ => None,
        })
        .collect();
    let mut cert_index = 0;
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
                    let chain = ders.get(cert_index..).unwrap_or_default();
                    cert_index += 1;
                    let trust = trust
                        .filter(|_| !info.is_ca)
                        .map(|t| TrustReport::from_verdict(t.trust.verify(chain, &t.revoked, now)));
                    Object::Certificate {
                        info,
                        details: Box::new(details),
                        validity,
                        trust,
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
                trust,
            } => print_cert(info, details, validity, trust.as_ref(), &pos, now),
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

fn print_cert(
    info: &CertInfo,
    d: &CertDetails,
    validity: &str,
    trust: Option<&TrustReport>,
    pos: &str,
    now: DateTime<Utc>,
) {
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
    if !info.san.is_empty() {
        field("san", &info.san.labelled().join(", "));
    }
    if let Some(id) = &info.spiffe_id {
        field("spiffe id", id.as_str());
    } else if let Some(problem) = info.san.spiffe_problem() {
        field("spiffe id", &format!("none ({problem})"));
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
    field("spki sha256", &info.spki_sha256);
    match trust {
        Some(t) => {
            // The version line above already says what a passing version check would.
            for c in t.checks.iter().filter(|c| !(c.ok && c.name == "version")) {
                let detail = match c.ok {
                    true => c.detail.clone(),
                    false => format!("FAIL: {}", c.detail),
                };
                field(&format!("trust: {}", c.name), &detail);
            }
            match t.refused {
                None => field("trust", "accepted by the gate (for apps trusting that CA)"),
                Some(reason) => field("trust", &format!("refused by the gate ({reason})")),
            }
        }
        None if !info.is_ca => field(
            "trust",
            "not checked: no store in the state dir (--state-dir / BOTGATE_STATE_DIR)",
        ),
        None => {}
    }
}

fn field(name: &str, value: &str) {
    println!("    {name:<18} {value}");
}
