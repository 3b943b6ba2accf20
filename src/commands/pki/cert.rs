//! `botgate cert issue|list|show|revoke`: the client-certificate inventory. It covers certificates
//! issued here, certificates in the `[inventory] watch` directories of the policy file (added to
//! the store when first found, so they can be revoked and tracked), and certificates the gate has
//! seen that are in neither.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cert_view::{CertView, print_list, print_show};
use super::{CertRef, key_algorithm, pki_err, record_admin, rfc3339, store_err};
use crate::cli::CertCommand;
use crate::commands::print_json;
use crate::exit::Failure;
use crate::paths::Paths;
use crate::pki::{self, CertInfo, ClientCertRequest, ScanResult};
use crate::store::Store;
use crate::store::pki::{CertRecord, CertSighting};

pub fn run(paths: &Paths, store: &Store, now: DateTime<Utc>, cmd: CertCommand) -> Result<()> {
    match cmd {
        CertCommand::Issue {
            cn,
            csr,
            days,
            out,
            key_type,
            sans,
            json,
        } => {
            let sans = parse_sans(&sans)?;
            issue(
                paths,
                store,
                now,
                &cn,
                csr.as_deref(),
                days,
                &out,
                key_algorithm(key_type),
                &sans,
                json.json,
            )
        }
        CertCommand::List(json) => {
            let scan = sync_watched(paths, store, now)?;
            let certs = crate::store::wait(store.list_certs()).map_err(store_err)?;
            let known: std::collections::HashSet<&str> = certs
                .iter()
                .map(|c| c.fingerprint_sha256.as_str())
                .collect();
            let sightings = crate::store::wait(store.list_cert_sightings()).map_err(store_err)?;
            let seen_only: Vec<&CertSighting> = sightings
                .iter()
                .filter(|s| !known.contains(s.fingerprint_sha256.as_str()))
                .collect();
            let mut views: Vec<CertView> = certs
                .iter()
                .map(|c| CertView::from_record(c, now))
                .collect();
            views.extend(
                seen_only
                    .into_iter()
                    .map(|s| CertView::from_sighting(s, now)),
            );
            let unreadable = unreadable(&scan);
            if json.json {
                return print_json(&serde_json::json!({
                    "certs": views,
                    "unreadable_count": unreadable.len(),
                    "unreadable": unreadable,
                }));
            }
            print_list(&views)?;
            report_unreadable(&unreadable);
            Ok(())
        }
        CertCommand::Show { serial_or_cn, json } => {
            let scan = sync_watched(paths, store, now)?;
            let views = find_views(store, &serial_or_cn, now)?;
            let Some(first) = views.first() else {
                report_unreadable(&unreadable(&scan));
                return Err(Failure::refused(format!(
                    "no certificate with serial, fingerprint or CN {serial_or_cn:?} (see `botgate cert list`)"
                )));
            };
            if json.json {
                // The first match as the object (as before), every match under `matches`.
                let mut value = serde_json::to_value(first)?;
                value["other_matches"] = serde_json::json!(
                    views
                        .iter()
                        .skip(1)
                        .map(CertView::serial)
                        .collect::<Vec<_>>()
                );
                value["matches"] = serde_json::to_value(&views)?;
                return print_json(&value);
            }
            if views.len() > 1 {
                println!(
                    "{} certificates match {serial_or_cn:?} (unrevoked and newest first):",
                    views.len()
                );
            }
            for (i, view) in views.iter().enumerate() {
                if views.len() > 1 {
                    println!();
                    println!("[{}]", i + 1);
                }
                print_show(view);
            }
            Ok(())
        }
        CertCommand::Revoke { serial_or_cn, json } => {
            revoke(paths, store, now, &serial_or_cn, json.json)
        }
    }
}

/// Certificates only seen at the gate that match `query` join the inventory (as watched, from
/// the certificate the gate recorded), so `cert revoke` can act on anything `cert list` lists.
/// Returns whether any was added.
fn adopt_sightings(store: &Store, query: &str, now: DateTime<Utc>) -> Result<bool> {
    let sightings = crate::store::wait(store.find_cert_sightings(query)).map_err(store_err)?;
    let parsed: Vec<CertInfo> = sightings
        .iter()
        .filter_map(|s| s.cert_pem.as_deref())
        .filter_map(|pem| pki::certificates("recorded certificate", pem.as_bytes()).ok())
        .filter_map(|mut v| (!v.is_empty()).then(|| v.remove(0)))
        .collect();
    let found: Vec<(Option<String>, String, &CertInfo)> =
        parsed.iter().map(|c| (None, c.to_pem(), c)).collect();
    add_to_inventory(store, &found, now)?;
    Ok(!found.is_empty())
}

/// Every certificate `cert list` lists that matches `query` (serial, fingerprint or CN):
/// inventoried ones (unrevoked, newest first), then ones only seen at the gate.
fn find_views(store: &Store, query: &str, now: DateTime<Utc>) -> Result<Vec<CertView>> {
    let records = crate::store::wait(store.find_certs(query)).map_err(store_err)?;
    let known: std::collections::HashSet<&str> = records
        .iter()
        .map(|c| c.fingerprint_sha256.as_str())
        .collect();
    let sightings = crate::store::wait(store.find_cert_sightings(query)).map_err(store_err)?;
    let mut views: Vec<CertView> = records
        .iter()
        .map(|c| CertView::from_record(c, now))
        .collect();
    views.extend(
        sightings
            .iter()
            .filter(|s| !known.contains(s.fingerprint_sha256.as_str()))
            .map(|s| CertView::from_sighting(s, now)),
    );
    Ok(views)
}

#[allow(clippy::too_many_arguments)]
fn issue(
    paths: &Paths,
    store: &Store,
    now: DateTime<Utc>,
    cn: &str,
    csr: Option<&Path>,
    days: u32,
    out: &Path,
    key: pki::KeyAlgorithm,
    sans: &[rcgen::SanType],
    json: bool,
) -> Result<()> {
    pki::issue::validate_common_name(cn).map_err(pki_err)?;
    crate::commands::ensure_out_dir(out)?;
    let stem = file_stem_for(cn);
    let cert_path = out.join(format!("{stem}.crt"));
    let key_path = out.join(format!("{stem}.key"));
    for p in [&cert_path, &key_path] {
        if p.exists() && (p == &cert_path || csr.is_none()) {
            return Err(Failure::bad_input(format!(
                "{} already exists; refusing to overwrite it (move it away or use another --out)",
                p.display()
            )));
        }
    }
    let csr_bytes =
        match csr {
            Some(p) => Some(crate::input::read(p, crate::input::PKI_FILE).map_err(|e| {
                Failure::bad_input(format!("cannot read --csr {}: {e}", p.display()))
            })?),
            None => None,
        };
    let csr_name = csr.map(|p| p.display().to_string()).unwrap_or_default();
    let req = ClientCertRequest {
        common_name: cn,
        csr: csr_bytes.as_deref().map(|b| (csr_name.as_str(), b)),
        days,
        key,
        now,
    };
    let issued = pki::issue::issue_client_cert_with_sans(store, &req, sans).map_err(pki_err)?;
    let info = &issued.info;
    let undo_hint = || {
        format!(
            "certificate {} (serial {}) was issued but could not be written; revoke it with `botgate cert revoke {}`",
            cn, info.serial_hex, info.serial_hex
        )
    };
    std::fs::write(&cert_path, &issued.chain_pem)
        .with_context(|| format!("cannot write {}", cert_path.display()))
        .with_context(undo_hint)?;
    let key_file = match &issued.key_pem {
        Some(pem) => {
            pki::ca::write_private_file(&key_path, pem.as_bytes())
                .map_err(anyhow::Error::new)
                .with_context(undo_hint)?;
            Some(key_path)
        }
        None => None,
    };
    let details = serde_json::json!({
        "serial": info.serial_hex, "fingerprint_sha256": info.fingerprint_sha256, "not_after": rfc3339(info.not_after),
        "key_type": info.key_type, "from_csr": csr.is_some(),
    });
    let cert_ref = CertRef {
        common_name: info.common_name.as_deref(),
        serial: Some(&info.serial_hex),
        fingerprint: Some(&info.fingerprint_sha256),
        issuer: Some(&info.issuer),
    };
    record_admin(paths, store, now, "cert_issue", cn, details, cert_ref);
    if json {
        return print_json(&serde_json::json!({
            "common_name": info.common_name, "subject": info.subject, "issuer": info.issuer, "serial": info.serial_hex,
            "fingerprint_sha256": info.fingerprint_sha256, "not_before": rfc3339(info.not_before), "not_after": rfc3339(info.not_after),
            "key_type": info.key_type, "cert_file": cert_path, "key_file": key_file,
        }));
    }
    println!(
        "issued {} ({}), expires {} ({})",
        info.subject,
        info.key_type,
        rfc3339(info.not_after),
        crate::duration::countdown(info.not_after - now)
    );
    println!("  serial   {}", info.serial_hex);
    println!("  SHA-256  {}", info.fingerprint_sha256);
    println!(
        "  cert     {} (certificate + issuing CA)",
        cert_path.display()
    );
    match &key_file {
        Some(k) => println!(
            "  key      {} (mode 0600; not stored anywhere else)",
            k.display()
        ),
        None => println!("  key      stays with the requester (issued from a CSR)"),
    }
    Ok(())
}

fn revoke(paths: &Paths, store: &Store, now: DateTime<Utc>, query: &str, json: bool) -> Result<()> {
    sync_watched(paths, store, now)?;
    // A certificate file (e.g. one made with openssl that botgate never issued): add it to the
    // inventory, then revoke it by fingerprint.
    let from_file;
    let query = if Path::new(query).is_file() {
        let certs = pki::read_certificate_file(Path::new(query)).map_err(pki_err)?;
        let leaf = certs
            .first()
            .ok_or_else(|| Failure::bad_input(format!("{query}: no certificate in the file")))?;
        add_to_inventory(
            store,
            &[(Some(query.to_string()), leaf.to_pem(), leaf)],
            now,
        )?;
        from_file = leaf.fingerprint_sha256.clone();
        from_file.as_str()
    } else {
        query
    };
    let mut matches = crate::store::wait(store.find_certs(query)).map_err(store_err)?;
    if matches.is_empty() && adopt_sightings(store, query, now)? {
        matches = crate::store::wait(store.find_certs(query)).map_err(store_err)?;
    }
    if matches.is_empty() {
        return Err(Failure::refused(format!(
            "no certificate with serial, fingerprint or CN {query:?} in the inventory (see `botgate cert list`); for a certificate botgate did not issue, pass its file: `botgate cert revoke path/to/cert.pem`"
        )));
    }
    let live: Vec<&CertRecord> = matches.iter().filter(|c| c.revoked_at.is_none()).collect();
    let target = match live.as_slice() {
        [] => {
            return Err(Failure::refused(format!(
                "every certificate matching {query:?} is already revoked ({})",
                matches
                    .iter()
                    .map(|c| c.serial.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        [one] => *one,
        many => {
            return Err(Failure::refused(format!(
                "{} unrevoked certificates match {query:?} (serials {}); revoke one by serial",
                many.len(),
                many.iter()
                    .map(|c| c.serial.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let rec = crate::store::wait(store.revoke_cert(target.id, now, Some("revoked by admin")))
        .map_err(store_err)?;
    let issuing = crate::store::wait(store.issuing_ca()).map_err(store_err)?;
    let crl = match issuing {
        Some(ca) if rec.ca_id == Some(ca.id) => Some(pki::issue_crl(store, now).map_err(pki_err)?),
        _ => None,
    };
    let details = serde_json::json!({
        "serial": rec.serial, "fingerprint_sha256": rec.fingerprint_sha256, "source": rec.source,
        "crl_number": crl.as_ref().map(|c| c.crl_number),
    });
    let cert_ref = CertRef {
        common_name: Some(&rec.common_name),
        serial: Some(&rec.serial),
        fingerprint: Some(&rec.fingerprint_sha256),
        issuer: Some(&rec.issuer),
    };
    record_admin(
        paths,
        store,
        now,
        "cert_revoke",
        &rec.common_name,
        details,
        cert_ref,
    );
    if json {
        let mut value = serde_json::to_value(CertView::from_record(&rec, now))?;
        value["crl_number"] = serde_json::json!(crl.as_ref().map(|c| c.crl_number));
        return print_json(&value);
    }
    println!(
        "revoked certificate {} (serial {}); the running gate refuses it within 1 s",
        rec.common_name, rec.serial
    );
    match &crl {
        Some(c) => println!(
            "CRL #{} of {:?} now lists {} revoked certificate(s); publish it with `botgate ca crl --out FILE`",
            c.crl_number, c.ca_name, c.revoked
        ),
        None => println!(
            "it was not issued by botgate's CA, so it is not in botgate's CRL; the gate denies it by fingerprint"
        ),
    }
    Ok(())
}

/// `--san` values as SANs: openssl's `DNS:`/`URI:`/`email:`/`IP:` prefixes, else inferred like
/// step's `--san` (an IP address, `x@y` an email, `scheme://…` a URI, anything else a DNS name).
/// A `spiffe://` URI must be a valid SPIFFE ID and the only URI SAN (an X.509-SVID has one).
fn parse_sans(values: &[String]) -> Result<Vec<rcgen::SanType>> {
    use rcgen::SanType;
    let bad = |v: &str, why: String| Failure::bad_input(format!("--san {v:?}: {why}"));
    let ia5 = |v: &str, s: &str| {
        rcgen::string::Ia5String::try_from(s.to_string())
            .map_err(|_| bad(v, "only ASCII characters are allowed".into()))
    };
    let mut out = Vec::new();
    for v in values {
        let (kind, name) = match v.split_once(':') {
            Some((k, rest))
                if ["dns", "uri", "email", "ip"].contains(&k.to_ascii_lowercase().as_str()) =>
            {
                (k.to_ascii_lowercase(), rest)
            }
            _ if v.parse::<std::net::IpAddr>().is_ok() => ("ip".into(), v.as_str()),
            _ if v.contains("://") => ("uri".into(), v.as_str()),
            _ if v.contains('@') => ("email".into(), v.as_str()),
            _ => ("dns".into(), v.as_str()),
        };
        if name.is_empty() {
            return Err(bad(v, "the name is empty".into()));
        }
        let san = match kind.as_str() {
            "ip" => SanType::IpAddress(
                name.parse()
                    .map_err(|_| bad(v, "not an IP address".into()))?,
            ),
            "uri" => {
                if name
                    .get(..9)
                    .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
                {
                    crate::cert_names::SpiffeId::parse(name)
                        .map_err(|e| bad(v, format!("not a valid SPIFFE ID: {e}")))?;
                }
                SanType::URI(ia5(v, name)?)
            }
            "email" => SanType::Rfc822Name(ia5(v, name)?),
            _ => {
                if name.contains(|c: char| c.is_whitespace() || c == '/') {
                    return Err(bad(v, "not a DNS name".into()));
                }
                SanType::DnsName(ia5(v, name)?)
            }
        };
        if !out.contains(&san) {
            out.push(san);
        }
    }
    let uris: Vec<&str> = out
        .iter()
        .filter_map(|s| match s {
            SanType::URI(u) => Some(u.as_str()),
            _ => None,
        })
        .collect();
    if uris.len() > 1 && uris.iter().any(|u| u.starts_with("spiffe://")) {
        return Err(Failure::bad_input(format!(
            "--san: a certificate with a SPIFFE ID must carry exactly one URI SAN (got {}); spiffe_id selectors refuse certificates with more",
            uris.join(", ")
        )));
    }
    Ok(out)
}

/// A file name for `CN.crt`/`CN.key`: characters outside `[A-Za-z0-9._-]` become `_`.
fn file_stem_for(cn: &str) -> String {
    let stem: String = cn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.trim_matches('.').is_empty() {
        format!("cert{stem}")
    } else {
        stem
    }
}

/// The `[inventory] watch` directories from the policy file, relative ones resolved against the
/// policy file's directory. A missing policy file means none; an invalid one is a warning (the
/// inventory of issued certificates still works).
fn watched_dirs(paths: &Paths) -> Vec<PathBuf> {
    match crate::config::load(&paths.config) {
        Ok(loaded) => {
            let base = paths.config.parent().unwrap_or(Path::new("."));
            loaded
                .file
                .inventory
                .watch
                .iter()
                .map(|d| {
                    if d.is_absolute() {
                        d.clone()
                    } else {
                        base.join(d)
                    }
                })
                .collect()
        }
        Err(crate::config::ConfigError::NotFound { .. }) => Vec::new(),
        Err(e) => {
            eprintln!("warning: watched certificate directories are skipped: {e}");
            Vec::new()
        }
    }
}

/// Scan the watched directories and add newly found certificates to the store.
fn sync_watched(paths: &Paths, store: &Store, now: DateTime<Utc>) -> Result<ScanResult> {
    let dirs = watched_dirs(paths);
    if dirs.is_empty() {
        return Ok(ScanResult::default());
    }
    pki::inventory::sync_dirs(store, &dirs, now).map_err(store_err)
}

/// Add certificates (path, PEM, parsed) to the inventory as watched; known ones keep their row.
fn add_to_inventory(
    store: &Store,
    found: &[(Option<String>, String, &CertInfo)],
    now: DateTime<Utc>,
) -> Result<()> {
    pki::inventory::record_certs(store, found, now).map_err(store_err)?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct Unreadable {
    path: String,
    error: String,
}

fn unreadable(scan: &ScanResult) -> Vec<Unreadable> {
    let mut out: Vec<Unreadable> = scan
        .dir_errors
        .iter()
        .map(|(p, e)| Unreadable {
            path: p.display().to_string(),
            error: format!("cannot list directory: {e}"),
        })
        .collect();
    out.extend(scan.errors().map(|(p, e)| Unreadable {
        path: p.display().to_string(),
        error: e.to_string(),
    }));
    out
}

fn report_unreadable(list: &[Unreadable]) {
    if list.is_empty() {
        return;
    }
    eprintln!(
        "{} watched file(s) could not be read as certificates:",
        list.len()
    );
    for u in list {
        eprintln!("  {}: {}", u.path, u.error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(
            file_stem_for("device-a1.factory.corp"),
            "device-a1.factory.corp"
        );
        assert_eq!(file_stem_for("a/b c"), "a_b_c");
        assert_eq!(file_stem_for(".."), "cert..");
    }

    #[test]
    fn san_values_are_prefixed_or_inferred() {
        use rcgen::SanType;
        let sans = parse_sans(&[
            "spiffe://example.org/ns/prod/sa/deployer".into(),
            "10.0.0.7".into(),
            "bot@example.com".into(),
            "build.example.com".into(),
            "DNS:other.example.com".into(),
            "IP:::1".into(),
        ])
        .unwrap();
        assert!(
            matches!(&sans[0], SanType::URI(u) if u.as_str() == "spiffe://example.org/ns/prod/sa/deployer")
        );
        assert!(matches!(sans[1], SanType::IpAddress(_)));
        assert!(matches!(&sans[2], SanType::Rfc822Name(e) if e.as_str() == "bot@example.com"));
        assert!(matches!(&sans[3], SanType::DnsName(d) if d.as_str() == "build.example.com"));
        assert!(matches!(&sans[4], SanType::DnsName(d) if d.as_str() == "other.example.com"));
        assert!(matches!(sans[5], SanType::IpAddress(_)));
    }

    #[test]
    fn bad_san_values_are_refused() {
        for bad in [
            "spiffe://Example.org/a",
            "IP:nope",
            "DNS:",
            "URI:spiffe://example.org/a/",
        ] {
            assert!(parse_sans(&[bad.into()]).is_err(), "{bad}");
        }
        let two = parse_sans(&[
            "spiffe://example.org/a".into(),
            "https://example.org/".into(),
        ]);
        assert!(two.unwrap_err().to_string().contains("exactly one URI SAN"));
    }
}
