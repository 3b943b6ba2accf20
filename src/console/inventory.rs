//! Turn store records and the policy file into the console's view-model rows: token rows with
//! the policies that reference them, and apps with the credentials each policy admits. Pure
//! functions; the feed calls them off the UI task.

use crate::config::model::{PolicyFile, Selector};
use crate::config::values::full_match_regex;
use crate::policy::{self, CertIdentity, Identity, PolicySet};
use crate::rotation::{CadencePolicy, CredentialKind, rotation_due};
use crate::store::TokenRecord;
use crate::store::pki::CertRecord;

use super::model::{AppRow, CertRow, PolicyRow, TokenRow};

/// The rotation cadence the policy file sets (the defaults without one, or when its
/// `[rotation]` is unusable: `policy check` says why).
fn cadence(policy: Option<&PolicyFile>) -> CadencePolicy {
    policy
        .map(|p| CadencePolicy::from_section_or_default(&p.rotation))
        .unwrap_or_default()
}

/// Token rows from store records; `policies` names the policies referencing each token, and the
/// rotation due date follows the file's `[rotation]` cadence.
pub fn token_rows(records: &[TokenRecord], policy: Option<&PolicyFile>) -> Vec<TokenRow> {
    let cadence = cadence(policy);
    let compiled = policy.and_then(|p| policy::compile(p).ok());
    records
        .iter()
        .map(|r| TokenRow {
            rotation_due_at: rotation_due(CredentialKind::Token, &r.name, r.created_at, &cadence),
            name: r.name.clone(),
            client_id: r.client_id.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked: r.revoked_at.is_some(),
            disabled: r.disabled_at.is_some(),
            last_seen_at: r.last_seen_at,
            bounds: r.bounds.clone(),
            policies: compiled
                .as_ref()
                .map(|p| policies_for_token(p, &r.name))
                .unwrap_or_default(),
        })
        .collect()
}

/// Cert rows from store records; `source` is `issued` or `watched:<path>`; the rotation due
/// date follows the file's `[rotation]` cadence for the CN, from the certificate's not_before.
pub fn cert_rows(records: &[CertRecord], policy: Option<&PolicyFile>) -> Vec<CertRow> {
    let cadence = cadence(policy);
    let compiled = policy.and_then(|p| policy::compile(p).ok());
    records
        .iter()
        .map(|r| CertRow {
            policies: compiled
                .as_ref()
                .map(|p| {
                    policies_for_cert(
                        p,
                        &cert_identity(&r.common_name, &r.issuer, &r.serial, &r.fingerprint_sha256),
                    )
                })
                .unwrap_or_default(),
            rotation_due_at: rotation_due(
                CredentialKind::Cert,
                &r.common_name,
                r.not_before,
                &cadence,
            ),
            common_name: r.common_name.clone(),
            issuer: r.issuer.clone(),
            serial: r.serial.clone(),
            fingerprint_sha256: r.fingerprint_sha256.clone(),
            not_after: r.not_after,
            key_type: r.key_type.clone(),
            revoked: r.revoked_at.is_some(),
            last_seen_at: r.last_seen_at,
            source: match &r.path {
                Some(p) => format!("{}:{p}", r.source.as_str()),
                None => r.source.as_str().to_string(),
            },
        })
        .collect()
}

/// `app / policy` for every policy that admits `token` (as `policy::admitting_policies`
/// answers, so a token named only in `exclude` or `require` is not listed); "(any token)" when
/// the policy admits every token rather than naming this one.
pub fn policies_for_token(policies: &PolicySet, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    for app in &policies.apps {
        for a in policy::admitting_policies(app, Identity::Token { name: token }) {
            let suffix = if a.named { "" } else { " (any token)" };
            out.push(format!("{} / {}{suffix}", app.name, a.policy.name));
        }
    }
    out
}

/// `app / policy` for every policy that admits the certificate `id` (as
/// `policy::admitting_policies` answers); "(any certificate)" when the policy admits every
/// valid certificate rather than naming this one.
pub fn policies_for_cert(policies: &PolicySet, id: &CertIdentity) -> Vec<String> {
    let mut out = Vec::new();
    for app in &policies.apps {
        for a in policy::admitting_policies(app, Identity::Cert(id)) {
            let suffix = if a.named { "" } else { " (any certificate)" };
            out.push(format!("{} / {}{suffix}", app.name, a.policy.name));
        }
    }
    out
}

/// What the policy can match of a known certificate (the store keeps no SANs or subject
/// organisation, so selectors on those do not match here).
fn cert_identity(common_name: &str, issuer: &str, serial: &str, fingerprint: &str) -> CertIdentity {
    CertIdentity {
        common_name: Some(common_name.to_string()),
        issuer: issuer.to_string(),
        serial: serial.to_string(),
        fingerprint_sha256: fingerprint.to_string(),
        ..Default::default()
    }
}

/// Apps with their policies in file order and what each admits, resolved against the inventory.
pub fn app_rows(
    file: &PolicyFile,
    certs: &[CertRow],
    audiences: &[(String, String)],
) -> Vec<AppRow> {
    let compiled = policy::compile(file).ok();
    file.app
        .iter()
        .enumerate()
        .map(|(ai, app)| AppRow {
            name: app.name.get_ref().clone(),
            hostnames: app.hostnames.iter().map(|h| h.get_ref().clone()).collect(),
            aud: match (&app.aud, app.assertion) {
                (_, false) => None,
                (Some(aud), true) => Some(aud.get_ref().clone()),
                (None, true) => audiences
                    .iter()
                    .find(|(name, _)| name == app.name.get_ref())
                    .map(|(_, aud)| aud.clone()),
            },
            policies: app
                .policy
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    let admitted = compiled
                        .as_ref()
                        .and_then(|c| c.apps.get(ai))
                        .map(|a| admitted_certs(a, pi, certs));
                    let mut admits: Vec<String> = p
                        .include
                        .iter()
                        .map(|s| describe(s.get_ref(), admitted))
                        .collect();
                    admits.extend(
                        p.require
                            .iter()
                            .map(|s| format!("(require {})", describe(s.get_ref(), None))),
                    );
                    admits.extend(
                        p.exclude
                            .iter()
                            .map(|s| format!("(except {})", describe(s.get_ref(), None))),
                    );
                    PolicyRow {
                        name: p.name.get_ref().clone(),
                        action: p.action.get_ref().as_str().to_string(),
                        admits,
                    }
                })
                .collect(),
        })
        .collect()
}

/// How many live certificates of the inventory policy `index` of `app` admits.
fn admitted_certs(app: &policy::CompiledApp, index: usize, certs: &[CertRow]) -> usize {
    let Some(target) = app.policies.get(index) else {
        return 0;
    };
    certs
        .iter()
        .filter(|c| !c.revoked)
        .filter(|c| {
            let id = cert_identity(&c.common_name, &c.issuer, &c.serial, &c.fingerprint_sha256);
            policy::admitting_policies(app, Identity::Cert(&id))
                .iter()
                .any(|a| std::ptr::eq(a.policy, target))
        })
        .count()
}

/// A selector as a reader would say it; CN patterns say how many known certificates the
/// policy admits (`admitted`, from `policy::admitting_policies`).
fn describe(s: &Selector, admitted: Option<usize>) -> String {
    match s {
        Selector::ServiceToken(n) => n.clone(),
        Selector::AnyServiceToken(b) => if *b {
            "any service token"
        } else {
            "no service token"
        }
        .into(),
        Selector::ValidCertificate(b) => if *b {
            "any valid certificate"
        } else {
            "no certificate"
        }
        .into(),
        Selector::CommonName(re) => match (full_match_regex(re), admitted) {
            (Err(_), _) => format!("CN ~ {re} (invalid pattern)"),
            (Ok(_), Some(n)) => format!("CN ~ {re} ({n} cert{})", if n == 1 { "" } else { "s" }),
            (Ok(_), None) => format!("CN ~ {re}"),
        },
        Selector::Issuer(v) => format!("issuer {v}"),
        Selector::Organization(v) => format!("O={v}"),
        Selector::CertCountry(v) => format!("cert C={}", v.values().join(",")),
        Selector::Ip(v) => format!("ip {}", v.values().join(",")),
        Selector::Country(v) => format!("country {}", v.values().join(",")),
        Selector::Everyone(b) => if *b { "everyone" } else { "nobody" }.into(),
        Selector::SanDns(m)
        | Selector::SanUri(m)
        | Selector::SanEmail(m)
        | Selector::SanIp(m)
        | Selector::SpiffeId(m) => format!("{} {}", s.key(), m.describe()),
        Selector::SpkiSha256(v) => format!("key pin {}", v.values().join(",")),
        Selector::Oidc(o) => o.describe(),
        Selector::OidcClaim(c) => format!("claims {}", crate::config::model::describe_claims(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[app]]
name = "api"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { service_token = "ci-deploy-staging" }]

[[app.policy]]
name = "Factory devices"
action = "non_identity"
include = [{ common_name = "device-[0-9]+\\.factory\\.corp" }]
require = [{ country = ["SG", "VN"] }]

[[app.policy]]
name = "Any bot"
action = "service_auth"
include = [{ any_service_token = true }]
"#;

    #[test]
    fn policies_and_admits_come_from_the_file() {
        let file: PolicyFile = toml::from_str(POLICY).unwrap();
        let compiled = crate::policy::compile(&file).unwrap();
        assert_eq!(
            policies_for_token(&compiled, "ci-deploy-prod"),
            vec!["api / CI deployment"],
            "the first matching policy decides: the later catch-all never admits this token"
        );
        assert_eq!(
            policies_for_token(&compiled, "ops-tool-prod"),
            vec!["api / Any bot (any token)"]
        );
        let now = chrono::Utc::now();
        let cert = |cn: &str| CertRow {
            common_name: cn.into(),
            issuer: "CA".into(),
            serial: "01".into(),
            fingerprint_sha256: String::new(),
            not_after: now,
            key_type: "ecdsa-p256".into(),
            revoked: false,
            last_seen_at: None,
            source: "store".into(),
            rotation_due_at: now,
            policies: Vec::new(),
        };
        let apps = app_rows(
            &file,
            &[
                cert("device-1.factory.corp"),
                cert("device-2.factory.corp"),
                cert("laptop.corp"),
            ],
            &[("api".into(), "tag-from-the-store".into())],
        );
        assert_eq!(apps[0].aud.as_deref(), Some("tag-from-the-store"));
        assert_eq!(
            apps[0].policies[0].admits,
            vec!["ci-deploy-prod", "ci-deploy-staging"]
        );
        assert_eq!(
            apps[0].policies[1].admits,
            vec![
                "CN ~ device-[0-9]+\\.factory\\.corp (2 certs)",
                "(require country SG,VN)"
            ]
        );
        assert_eq!(apps[0].policies[1].action, "non_identity");
    }

    #[test]
    fn a_certificate_lists_the_policies_that_admit_it() {
        let file: PolicyFile = toml::from_str(POLICY).unwrap();
        let compiled = crate::policy::compile(&file).unwrap();
        let id = |cn: &str| cert_identity(cn, "CA", "01", "");
        assert_eq!(
            policies_for_cert(&compiled, &id("device-7.factory.corp")),
            vec!["api / Factory devices"]
        );
        assert!(policies_for_cert(&compiled, &id("laptop.corp")).is_empty());
    }

    /// Regression: a token named in `exclude` was listed as admitted.
    #[test]
    fn a_token_named_in_exclude_is_not_listed_as_admitted() {
        let text = POLICY.replace(
            "include = [{ any_service_token = true }]",
            "include = [{ any_service_token = true }]\nexclude = [{ service_token = \"ci-leaked-prod\" }]",
        );
        let file: PolicyFile = toml::from_str(&text).unwrap();
        let compiled = crate::policy::compile(&file).unwrap();
        assert!(policies_for_token(&compiled, "ci-leaked-prod").is_empty());
    }

    #[test]
    fn rotation_due_follows_the_rotation_section() {
        use crate::credential::{ClientId, SecretHash};
        let t0 = chrono::Utc::now();
        let token = |name: &str| TokenRecord {
            id: 1,
            name: name.into(),
            client_id: ClientId::generate().to_string(),
            secret_hash: SecretHash([0; 32]),
            created_at: t0,
            expires_at: t0 + chrono::Duration::days(365),
            revoked_at: None,
            disabled_at: None,
            secret_version: 1,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            last_seen_at: None,
            last_seen_ip: None,
            created_by: "test".into(),
            bounds: Default::default(),
        };
        let text = format!(
            "{POLICY}\n[rotation]\ntoken_cadence = \"60d\"\ncadence = [{{ pattern = \"^payments-\", token = \"30d\", cert = \"90d\" }}]\n"
        );
        let file: PolicyFile = toml::from_str(&text).unwrap();
        let rows = token_rows(
            &[token("ci-deploy-prod"), token("payments-api-prod")],
            Some(&file),
        );
        assert_eq!(rows[0].rotation_due(), t0 + chrono::Duration::days(60));
        assert_eq!(rows[1].rotation_due(), t0 + chrono::Duration::days(30));
        // Without a policy file: the defaults (tokens 90 days).
        let rows = token_rows(&[token("ci-deploy-prod")], None);
        assert_eq!(rows[0].rotation_due(), t0 + chrono::Duration::days(90));
        // Certificates: from not_before, 365 days by default, per CN pattern.
        let cert = |cn: &str| CertRecord {
            id: 1,
            serial: "01".into(),
            common_name: cn.into(),
            issuer: "CA".into(),
            ca_id: None,
            fingerprint_sha256: String::new(),
            not_before: t0,
            not_after: t0 + chrono::Duration::days(700),
            key_type: "ECDSA P-256".into(),
            cert_pem: String::new(),
            source: crate::store::pki::CertSource::Watched,
            path: None,
            revoked_at: None,
            revocation_reason: None,
            last_seen_at: None,
            last_seen_ip: None,
            created_at: t0 + chrono::Duration::days(5),
        };
        let rows = cert_rows(&[cert("device-1"), cert("payments-gw")], Some(&file));
        assert_eq!(rows[0].rotation_due(), t0 + chrono::Duration::days(365));
        assert_eq!(rows[1].rotation_due(), t0 + chrono::Duration::days(90));
    }
}
