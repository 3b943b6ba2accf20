//! How `cert list|show` present a certificate: one view over issued, watched and seen-only
//! certificates, as a table, a detail block, or JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rfc3339;
use crate::commands::print_table;
use crate::pki::{self, CertStatus};
use crate::store::pki::{CertRecord, CertSighting};

/// A certificate as `list`/`show` present it.
#[derive(Debug, Serialize)]
pub(super) struct CertView {
    common_name: String,
    subject: Option<String>,
    issuer: String,
    issuer_common_name: Option<String>,
    serial: String,
    fingerprint_sha256: String,
    not_before: Option<String>,
    not_after: Option<String>,
    expires_in_seconds: Option<i64>,
    key_type: Option<String>,
    #[serde(flatten)]
    names: Names,
    pub(super) status: &'static str,
    /// issued | watched | seen (presented at the gate, not in the inventory)
    source: &'static str,
    path: Option<String>,
    revoked_at: Option<String>,
    last_seen_at: Option<String>,
    last_seen_ip: Option<String>,
    #[serde(skip)]
    expires_in: String,
    #[serde(skip)]
    last_seen: String,
}

/// What a certificate says beyond its subject, read from its stored PEM (when there is one).
#[derive(Debug, Default, Serialize)]
struct Names {
    /// Subject alternative names in openssl's notation (`DNS:…`, `URI:…`, `email:…`, `IP:…`).
    san: Vec<String>,
    spiffe_id: Option<String>,
    /// SHA-256 of the SubjectPublicKeyInfo (what a `spki_sha256` selector pins).
    spki_sha256: Option<String>,
    /// Why the certificate has no SPIFFE ID although a URI SAN looks like one.
    #[serde(skip)]
    spiffe_problem: Option<String>,
}

impl Names {
    fn of(parsed: Option<&pki::CertInfo>) -> Self {
        let Some(p) = parsed else {
            return Self::default();
        };
        Self {
            san: p.san.labelled(),
            spiffe_id: p.spiffe_id.as_ref().map(|i| i.to_string()),
            spki_sha256: Some(p.spki_sha256.clone()),
            spiffe_problem: p.san.spiffe_problem(),
        }
    }
}

/// The first certificate in stored PEM, if it parses.
fn parse_stored(pem: &str) -> Option<pki::CertInfo> {
    pki::certificates("stored certificate", pem.as_bytes())
        .ok()
        .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
}

impl CertView {
    pub(super) fn serial(&self) -> &str {
        &self.serial
    }

    pub(super) fn from_record(c: &CertRecord, now: DateTime<Utc>) -> Self {
        let parsed = parse_stored(&c.cert_pem);
        let status = CertStatus::at(c.not_after, c.revoked_at.is_some(), now);
        Self {
            common_name: c.common_name.clone(),
            subject: parsed.as_ref().map(|p| p.subject.clone()),
            issuer: c.issuer.clone(),
            names: Names::of(parsed.as_ref()),
            issuer_common_name: parsed.and_then(|p| p.issuer_common_name),
            serial: c.serial.clone(),
            fingerprint_sha256: c.fingerprint_sha256.clone(),
            not_before: Some(rfc3339(c.not_before)),
            not_after: Some(rfc3339(c.not_after)),
            expires_in_seconds: Some((c.not_after - now).num_seconds()),
            key_type: Some(c.key_type.clone()),
            status: status.as_str(),
            source: c.source.as_str(),
            path: c.path.clone(),
            revoked_at: c.revoked_at.map(rfc3339),
            last_seen_at: c.last_seen_at.map(rfc3339),
            last_seen_ip: c.last_seen_ip.clone(),
            expires_in: if c.revoked_at.is_some() {
                "-".into()
            } else {
                crate::duration::countdown(c.not_after - now)
            },
            last_seen: c
                .last_seen_at
                .map(|s| crate::duration::ago(now - s))
                .unwrap_or_else(|| "never".into()),
        }
    }

    /// A certificate the gate has seen but that is not in the inventory; what the handshake
    /// delivered (validity, key type, issuer, SANs) is read from the recorded certificate.
    pub(super) fn from_sighting(s: &CertSighting, now: DateTime<Utc>) -> Self {
        let parsed = s.cert_pem.as_deref().and_then(parse_stored);
        let not_after = parsed.as_ref().map(|p| p.not_after).or(s.not_after);
        let status = not_after
            .map(|n| CertStatus::at(n, false, now).as_str())
            .unwrap_or("active");
        Self {
            common_name: s.common_name.clone().unwrap_or_default(),
            subject: parsed.as_ref().map(|p| p.subject.clone()),
            issuer: parsed
                .as_ref()
                .map(|p| p.issuer.clone())
                .unwrap_or_else(|| s.issuer.clone()),
            issuer_common_name: parsed.as_ref().and_then(|p| p.issuer_common_name.clone()),
            serial: s.serial.clone(),
            fingerprint_sha256: s.fingerprint_sha256.clone(),
            not_before: parsed.as_ref().map(|p| rfc3339(p.not_before)),
            not_after: not_after.map(rfc3339),
            expires_in_seconds: not_after.map(|n| (n - now).num_seconds()),
            key_type: parsed.as_ref().map(|p| p.key_type.clone()),
            names: Names::of(parsed.as_ref()),
            status,
            source: "seen",
            path: None,
            revoked_at: None,
            last_seen_at: Some(rfc3339(s.last_seen_at)),
            last_seen_ip: s.last_seen_ip.clone(),
            expires_in: not_after
                .map(|n| crate::duration::countdown(n - now))
                .unwrap_or_else(|| "?".into()),
            last_seen: crate::duration::ago(now - s.last_seen_at),
        }
    }
}

pub(super) fn print_list(views: &[CertView]) -> anyhow::Result<()> {
    if views.is_empty() {
        println!(
            "no certificates yet; issue one with `botgate cert issue --cn NAME` or list directories under [inventory] watch"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                if v.common_name.is_empty() {
                    "(no CN)".into()
                } else {
                    v.common_name.clone()
                },
                v.issuer_common_name
                    .clone()
                    .unwrap_or_else(|| v.issuer.clone()),
                v.status.into(),
                v.expires_in.clone(),
                v.key_type.clone().unwrap_or_else(|| "?".into()),
                v.last_seen.clone(),
                v.source.into(),
                v.serial.clone(),
                v.fingerprint_sha256.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "CN",
            "ISSUER",
            "STATUS",
            "EXPIRES IN",
            "KEY",
            "LAST SEEN",
            "SOURCE",
            "SERIAL",
            "SHA-256",
        ],
        &rows,
    )
}

pub(super) fn print_show(v: &CertView) {
    println!("common name: {}", v.common_name);
    if let Some(s) = &v.subject {
        println!("subject:     {s}");
    }
    println!("issuer:      {}", v.issuer);
    println!("serial:      {}", v.serial);
    println!("SHA-256:     {}", v.fingerprint_sha256);
    println!("key type:    {}", v.key_type.as_deref().unwrap_or("?"));
    if let Some(pin) = &v.names.spki_sha256 {
        println!("SPKI SHA-256: {pin}");
    }
    if !v.names.san.is_empty() {
        println!("SAN:         {}", v.names.san.join(", "));
    }
    if let Some(id) = &v.names.spiffe_id {
        println!("SPIFFE ID:   {id}");
    }
    if let Some(problem) = &v.names.spiffe_problem {
        println!("SPIFFE ID:   none ({problem})");
    }
    println!("status:      {}", v.status);
    if let Some(nb) = &v.not_before {
        println!("not before:  {nb}");
    }
    println!(
        "not after:   {} ({})",
        v.not_after.as_deref().unwrap_or("?"),
        v.expires_in
    );
    if let Some(r) = &v.revoked_at {
        println!("revoked:     {r}");
    }
    println!(
        "source:      {}{}",
        v.source,
        v.path
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    println!(
        "last seen:   {}{}",
        v.last_seen,
        v.last_seen_ip
            .as_deref()
            .map(|ip| format!(" from {ip}"))
            .unwrap_or_default()
    );
}
