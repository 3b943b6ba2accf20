//! Lint findings, each at its line:col, against a fixed clock and fixed tokens.

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::config::load::parse;
use crate::credential::SecretHash;
use crate::store::pki::CertRecord;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

fn token(name: &str, days: i64) -> TokenRecord {
    TokenRecord {
        id: 1,
        name: name.into(),
        client_id: format!("{:032x}.access", name.len()),
        secret_hash: SecretHash([0; 32]),
        created_at: now() - Duration::days(1),
        expires_at: now() - Duration::days(1) + Duration::days(days),
        revoked_at: None,
        disabled_at: None,
        secret_version: 1,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        last_seen_at: None,
        last_seen_ip: None,
        created_by: "test".into(),
        bounds: Default::default(),
    }
}

fn ctx(tokens: Vec<TokenRecord>) -> LintContext {
    LintContext {
        tokens: Some(tokens),
        certs: None,
        root_key_on_host: false,
        known_ca_names: None,
        now: now(),
    }
}

fn run(text: &str, ctx: &LintContext) -> Vec<Finding> {
    let cfg = parse(Path::new("policy.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    lint(&cfg, ctx)
}

/// The findings whose message contains `part`.
fn with<'a>(fs: &'a [Finding], part: &str) -> Vec<&'a Finding> {
    fs.iter().filter(|f| f.message.contains(part)).collect()
}

#[track_caller]
fn only_at(fs: &[Finding], part: &str, line: usize, col: usize) {
    let hits = with(fs, part);
    assert_eq!(hits.len(), 1, "{part}: {fs:#?}");
    assert_eq!((hits[0].line, hits[0].col), (line, col), "{}", hits[0]);
    assert_eq!(hits[0].severity, Severity::Warning);
}

const CLEAN: &str = r#"[[app]]
name = "api"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

#[test]
fn clean_file_with_matching_token_has_no_findings() {
    assert_eq!(run(CLEAN, &ctx(vec![token("ci-deploy-prod", 90)])), vec![]);
}

#[test]
fn missing_revoked_and_expired_tokens() {
    let fs = run(CLEAN, &ctx(vec![]));
    only_at(&fs, "no token named \"ci-deploy-prod\" exists", 9, 30);
    let mut revoked = token("ci-deploy-prod", 90);
    revoked.revoked_at = Some(now());
    only_at(&run(CLEAN, &ctx(vec![revoked])), "is revoked", 9, 30);
    let expired = token("ci-deploy-prod", 0);
    only_at(
        &run(CLEAN, &ctx(vec![expired])),
        "expired on 2026-11-27",
        9,
        30,
    );
}

#[test]
fn bypass_and_any_service_token() {
    let text = CLEAN.replace("\"service_auth\"", "\"bypass\"").replace(
        "[{ service_token = \"ci-deploy-prod\" }]",
        "[{ any_service_token = true }]",
    );
    let fs = run(&text, &ctx(vec![]));
    only_at(
        &fs,
        "bypass forwards requests without any authentication",
        8,
        10,
    );
    only_at(&fs, "any_service_token admits every live token", 9, 12);
}

#[test]
fn unreferenced_token_is_a_whole_file_finding() {
    let fs = run(
        CLEAN,
        &ctx(vec![
            token("ci-deploy-prod", 90),
            token("ops-backup-prod", 90),
        ]),
    );
    let hits = with(&fs, "\"ops-backup-prod\"");
    assert_eq!(hits.len(), 1, "{fs:#?}");
    assert!(hits[0].message.contains("no policy references it"));
    assert_eq!(hits[0].line, 0);
    assert!(
        hits[0]
            .to_string()
            .starts_with("policy.toml: warning: token \"ops-backup-prod\"")
    );
}

const TWO_APPS: &str = r#"[[app]]
name = "api"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "deploy" }]

[[app]]
name = "admin"
hostnames = ["admin.example.com"]
upstream = "http://127.0.0.1:9001"

[[app.policy]]
name = "CI too"
action = "service_auth"
include = [{ service_token = "deploy" }]
"#;

#[test]
fn token_in_many_apps_and_bad_name_and_long_life() {
    let fs = run(TWO_APPS, &ctx(vec![token("deploy", 400)]));
    only_at(&fs, "also admitted by app \"api\" (line 9)", 19, 30);
    only_at(&fs, "does not follow <team>-<purpose>-<env>", 9, 30);
    only_at(&fs, "valid for 400 days", 9, 30);
    assert_eq!(fs.len(), 3, "{fs:#?}");
}

/// Regression: a token named only in another app's `require` was reported as admitted there.
#[test]
fn token_required_but_not_admitted_by_a_second_app_is_not_shared() {
    let text = TWO_APPS.replace(
        "name = \"CI too\"\naction = \"service_auth\"\ninclude = [{ service_token = \"deploy\" }]",
        "name = \"CI too\"\naction = \"service_auth\"\ninclude = [{ service_token = \"ci-other-prod\" }]\nrequire = [{ service_token = \"deploy\" }]",
    );
    assert_ne!(text, TWO_APPS);
    let fs = run(
        &text,
        &ctx(vec![token("deploy", 30), token("ci-other-prod", 30)]),
    );
    assert!(with(&fs, "also admitted by app").is_empty(), "{fs:#?}");
}

#[test]
fn root_key_and_unknown_ca() {
    let text = CLEAN.replace(
        "upstream = \"http://127.0.0.1:9000\"\n",
        "upstream = \"http://127.0.0.1:9000\"\ntrusted_cas = [\"Corp CA\", \"Gone CA\"]\n",
    );
    let mut c = ctx(vec![token("ci-deploy-prod", 90)]);
    c.root_key_on_host = true;
    c.known_ca_names = Some(vec!["Corp CA".into()]);
    let fs = run(&text, &c);
    only_at(&fs, "CA \"Gone CA\" is not in the store", 5, 27);
    let root = with(&fs, "root CA private key");
    assert_eq!((root.len(), root[0].line), (1, 0));
    // Without a CA list, trusted_cas is not checked.
    c.known_ca_names = None;
    assert!(with(&run(&text, &c), "is not in the store").is_empty());
}

fn with_policies(policies: &str) -> String {
    format!(
        "[[app]]\nname = \"api\"\nhostnames = [\"api.example.com\"]\nupstream = \"http://127.0.0.1:9000\"\n{policies}"
    )
}

#[test]
fn shadowed_by_everyone() {
    // Line 5: [[app.policy]] "all"; line 10: [[app.policy]] "CI" whose name is on line 11.
    let text = with_policies(
        "[[app.policy]]\nname = \"all\"\naction = \"block\"\ninclude = [{ everyone = true }]\n\n[[app.policy]]\nname = \"CI\"\naction = \"service_auth\"\ninclude = [{ service_token = \"ci-deploy-prod\" }]\n",
    );
    let fs = run(&text, &ctx(vec![token("ci-deploy-prod", 90)]));
    only_at(
        &fs,
        "policy \"CI\" can never match: policy \"all\" above (line 6)",
        11,
        8,
    );
}

#[test]
fn shadowed_by_identical_include_or_wider_ip() {
    let p = |name: &str, include: &str, extra: &str| {
        format!(
            "\n[[app.policy]]\nname = \"{name}\"\naction = \"allow\"\ninclude = {include}\n{extra}"
        )
    };
    let text = with_policies(
        &[
            p(
                "office",
                "[{ ip = [\"10.0.0.0/8\", \"192.0.2.0/24\"] }]",
                "",
            ),
            p(
                "lab",
                "[{ ip = \"10.1.0.0/16\" }]",
                "require = [{ country = \"SG\" }]\n",
            ),
            p(
                "office again",
                "[{ ip = [\"192.0.2.0/24\", \"10.0.0.0/8\"] }]",
                "",
            ),
        ]
        .concat(),
    );
    let fs = run(&text, &ctx(vec![]));
    let hits = with(&fs, "can never match");
    assert_eq!(hits.len(), 2, "{fs:#?}");
    assert!(
        hits[0]
            .message
            .starts_with("policy \"lab\" can never match: policy \"office\"")
    );
    assert!(
        hits[1]
            .message
            .starts_with("policy \"office again\" can never match: policy \"office\"")
    );
}

#[test]
fn not_shadowed_when_earlier_has_require_or_is_narrower() {
    let text = with_policies(
        "[[app.policy]]\nname = \"all-sg\"\naction = \"allow\"\ninclude = [{ everyone = true }]\nrequire = [{ country = \"SG\" }]\n\n[[app.policy]]\nname = \"lab\"\naction = \"allow\"\ninclude = [{ ip = \"10.1.0.0/16\" }, { ip = \"192.0.2.0/24\" }]\n\n[[app.policy]]\nname = \"wider\"\naction = \"allow\"\ninclude = [{ ip = \"10.0.0.0/8\" }, { ip = \"192.0.2.0/24\" }]\n",
    );
    assert!(with(&run(&text, &ctx(vec![])), "can never match").is_empty());
}

fn cert(cn: &str, valid_days: i64) -> CertRecord {
    // Issuers backdate not_before by an hour against clock skew; lint allows for it.
    let not_before = now() - Duration::days(1) - Duration::hours(1);
    CertRecord {
        id: 1,
        serial: format!("{:032x}", cn.len() as u64 * 1000 + valid_days as u64),
        common_name: cn.into(),
        issuer: "CN=botgate Issuing CA".into(),
        ca_id: Some(2),
        fingerprint_sha256: "ab".repeat(32),
        not_before,
        not_after: not_before + Duration::hours(1) + Duration::days(valid_days),
        key_type: "ECDSA P-256".into(),
        cert_pem: String::new(),
        source: crate::store::pki::CertSource::Issued,
        path: None,
        revoked_at: None,
        revocation_reason: None,
        last_seen_at: None,
        last_seen_ip: None,
        created_at: not_before,
    }
}

fn with_certs(certs: Vec<CertRecord>) -> LintContext {
    LintContext {
        certs: Some(certs),
        ..ctx(vec![token("ci-deploy-prod", 90)])
    }
}

const CADENCE: &str = r#"
[rotation]
cert_cadence = "180d"
cadence = [
  { pattern = "^payments-", token = "30d", cert = "90d" },
]
"#;

#[test]
fn certs_valid_longer_than_their_cadence() {
    let text = format!("{CLEAN}{CADENCE}");
    let fs = run(
        &text,
        &with_certs(vec![
            cert("device-a1", 180),   // exactly the cadence: fine
            cert("device-b1", 365),   // longer than cert_cadence
            cert("payments-gw", 120), // longer than the payments rule
            cert("payments-db", 90),
        ]),
    );
    let long = with(&fs, "is valid for");
    assert_eq!(long.len(), 2, "{fs:#?}");
    only_at(
        &fs,
        "certificate \"device-b1\" (serial",
        12,
        16, // cert_cadence = "180d"
    );
    assert!(
        with(&fs, "device-b1")[0]
            .message
            .contains("longer than [rotation] cert_cadence (180 days)")
    );
    let pay = with(&fs, "\"payments-gw\"");
    assert_eq!(pay.len(), 1);
    assert!(
        pay[0]
            .message
            .contains("CNs matching \"^payments-\" (90 days)"),
        "{}",
        pay[0]
    );
    assert_eq!(
        (pay[0].line, pay[0].col),
        (14, 51),
        "at the rule's cert value"
    );
    assert!(
        pay[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("botgate rotate start cert")
    );
}

#[test]
fn certs_default_to_a_year_and_revoked_or_expired_are_ignored() {
    let mut revoked = cert("old-a", 800);
    revoked.revoked_at = Some(now());
    let mut expired = cert("old-b", 800);
    expired.not_after = now() - Duration::days(1);
    let fs = run(
        CLEAN,
        &with_certs(vec![
            cert("device-a1", 365),
            cert("device-c1", 730),
            revoked,
            expired,
        ]),
    );
    let long = with(&fs, "is valid for");
    assert_eq!(long.len(), 1, "{fs:#?}");
    assert!(long[0].message.contains("\"device-c1\""));
    assert!(
        long[0]
            .message
            .contains("the default certificate cadence (365 days)")
    );
    assert_eq!(
        long[0].line, 0,
        "no setting to point at: the file as a whole"
    );
}

#[test]
fn unknown_store_skips_the_checks_that_need_it() {
    let cx = LintContext {
        tokens: None,
        certs: None,
        ..ctx(vec![])
    };
    let fs = run(CLEAN, &cx);
    assert!(with(&fs, "no token named").is_empty(), "{fs:#?}");
}
