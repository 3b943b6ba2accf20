//! `pki::verify`, the one certificate-verification function (gate and `policy explain`), on
//! certificates made by the `openssl` CLI: X.509 v1 leaves signed directly by a trusted CA are
//! accepted; wrong signature, expired, not yet valid, revoked (CRL and `cert revoke`), v1
//! intermediate, v1 leaf under an intermediate, v1 "CA" and garbage are refused with the reason.

mod common;
use common::sh;

use std::path::Path;

use botgate::pki::verify::{CertProblem, Verdict};
use botgate::pki::{CertTrust, RevokedCerts, TrustMaterial};
use chrono::{DateTime, Duration, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

fn certs(dir: &Path, file: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(dir.join(file))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A trusted root "Corporate Device CA", an intermediate under it, and leaves made with the
/// seed's `openssl x509 -req` (v1) or with `-extfile` (v3).
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sh(
            d,
            &format!(
                "openssl req -x509 {EC} -keyout ca.key -out ca.crt -days 3650 -subj '/CN=Corporate Device CA'"
            ),
        );
        sh(
            d,
            &format!(
                "openssl req -new {EC} -keyout client.key -out client.csr -subj '/CN=github-actions-bot'"
            ),
        );
        sh(
            d,
            "printf 'extendedKeyUsage=clientAuth\\n' > client.ext && printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > ca.ext",
        );
        sh(
            d,
            &format!(
                "openssl req -new {EC} -keyout inter.key -out inter.csr -subj '/CN=Corporate Issuing CA'"
            ),
        );
        Fixture { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sign client.csr with `ca` into `out` (v1 unless `ext` names an extension file).
    fn leaf(&self, ca: &str, out: &str, days: i32, ext: Option<&str>) {
        let ext = ext.map(|e| format!(" -extfile {e}")).unwrap_or_default();
        sh(
            self.path(),
            &format!(
                "openssl x509 -req -in client.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial -out {out} -days {days} -sha256{ext}"
            ),
        );
    }

    fn material(&self, crls: Vec<CertificateRevocationListDer<'static>>) -> TrustMaterial {
        let mut m = TrustMaterial::default();
        m.trusted
            .insert("Corporate Device CA".into(), certs(self.path(), "ca.crt"));
        m.crls.insert("Corporate Device CA".into(), crls);
        m
    }

    fn verify(&self, file: &str, at: DateTime<Utc>, revoked: &RevokedCerts) -> Verdict {
        self.verify_chain(&certs(self.path(), file), at, revoked, Vec::new())
    }

    fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        at: DateTime<Utc>,
        revoked: &RevokedCerts,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Verdict {
        let trust =
            CertTrust::new(&["Corporate Device CA".to_string()], &self.material(crls)).unwrap();
        trust.verify(chain, revoked, at)
    }
}

fn problem(v: &Verdict) -> Option<CertProblem> {
    v.refusal.as_ref().map(|r| r.problem)
}

fn detail(v: &Verdict, check: &str) -> String {
    v.checks
        .iter()
        .find(|c| c.name == check)
        .map(|c| c.detail.clone())
        .unwrap_or_else(|| panic!("no {check} check in {:?}", v.checks))
}

#[test]
fn v1_leaf_signed_directly_by_a_trusted_ca_is_accepted() {
    let f = Fixture::new();
    f.leaf("ca", "client.crt", 365, None);
    let v = f.verify("client.crt", Utc::now(), &RevokedCerts::default());
    assert_eq!(problem(&v), None, "{:?}", v.checks);
    assert!(v.v1);
    assert_eq!(v.anchor.as_deref(), Some("Corporate Device CA"));
    assert_eq!(detail(&v, "chain"), "ok via \"Corporate Device CA\"");
    assert!(detail(&v, "version").contains("botgate cert issue --csr client.csr"));
    // The v3 flavour (with -extfile) is accepted too, through webpki.
    f.leaf("ca", "v3.crt", 365, Some("client.ext"));
    let v = f.verify("v3.crt", Utc::now(), &RevokedCerts::default());
    assert_eq!(problem(&v), None, "{:?}", v.checks);
    assert!(!v.v1);
    assert_eq!(detail(&v, "chain"), "ok via \"Corporate Device CA\"");
}

#[test]
fn wrong_signature_is_untrusted() {
    let f = Fixture::new();
    f.leaf("ca", "client.crt", 365, None);
    f.leaf("ca", "v3.crt", 365, Some("client.ext"));
    for file in ["client.crt", "v3.crt"] {
        let mut der = certs(f.path(), file).remove(0).to_vec();
        // The signature is the last field: change one byte of it.
        let last = der.len() - 3;
        der[last] ^= 0x55;
        let v = f.verify_chain(
            &[CertificateDer::from(der)],
            Utc::now(),
            &RevokedCerts::default(),
            Vec::new(),
        );
        assert_eq!(
            problem(&v),
            Some(CertProblem::Untrusted),
            "{file}: {:?}",
            v.checks
        );
    }
}

#[test]
fn certificate_from_another_ca_is_untrusted_and_names_the_trusted_cas() {
    let f = Fixture::new();
    sh(
        f.path(),
        &format!(
            "openssl req -x509 {EC} -keyout rogue.key -out rogue.crt -days 3650 -subj '/CN=Rogue CA'"
        ),
    );
    f.leaf("rogue", "client.crt", 365, None);
    let v = f.verify("client.crt", Utc::now(), &RevokedCerts::default());
    assert_eq!(problem(&v), Some(CertProblem::Untrusted));
    let d = detail(&v, "chain");
    assert!(
        d.contains("Rogue CA") && d.contains("Corporate Device CA"),
        "{d}"
    );
}

#[test]
fn expired_and_not_yet_valid_are_refused_as_expired() {
    let f = Fixture::new();
    f.leaf("ca", "client.crt", 30, None);
    f.leaf("ca", "v3.crt", 30, Some("client.ext"));
    let none = RevokedCerts::default();
    for file in ["client.crt", "v3.crt"] {
        let later = f.verify(file, Utc::now() + Duration::days(31), &none);
        assert_eq!(problem(&later), Some(CertProblem::Expired), "{file}");
        assert!(detail(&later, "validity").starts_with("expired"), "{file}");
        // The chain itself is fine, and explain says so.
        assert_eq!(detail(&later, "chain"), "ok via \"Corporate Device CA\"");
        let earlier = f.verify(file, Utc::now() - Duration::days(1), &none);
        assert_eq!(problem(&earlier), Some(CertProblem::Expired), "{file}");
        assert!(
            detail(&earlier, "validity").starts_with("not yet valid"),
            "{file}"
        );
    }
}

#[test]
fn revoked_by_botgate_or_by_the_cas_crl_is_refused_with_the_date() {
    let f = Fixture::new();
    f.leaf("ca", "client.crt", 365, None);
    f.leaf("ca", "v3.crt", 365, Some("client.ext"));
    let since: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
    for file in ["client.crt", "v3.crt"] {
        let der = certs(f.path(), file).remove(0);
        let fp = botgate::pki::fingerprint_sha256(der.as_ref());
        let revoked: RevokedCerts = [(fp, since)].into_iter().collect();
        let v = f.verify(file, Utc::now(), &revoked);
        assert_eq!(problem(&v), Some(CertProblem::Revoked), "{file}");
        assert_eq!(
            detail(&v, "revoked"),
            "yes since 2026-12-01T10:00:00Z (botgate cert revoke)"
        );
    }
    // A CRL the CA signed (made with openssl ca -gencrl) revokes both flavours too.
    let d = f.path();
    sh(
        d,
        "mkdir -p db && : > db/index.txt && printf '[ca]\\ndefault_ca=c\\n[c]\\ndatabase=db/index.txt\\ncrlnumber=db/crlnumber\\ndefault_md=sha256\\ndefault_crl_days=7\\n' > ca.cnf && echo 01 > db/crlnumber",
    );
    sh(
        d,
        "openssl ca -config ca.cnf -cert ca.crt -keyfile ca.key -revoke client.crt 2>&1 && openssl ca -config ca.cnf -cert ca.crt -keyfile ca.key -revoke v3.crt && openssl ca -config ca.cnf -cert ca.crt -keyfile ca.key -gencrl -out crl.pem",
    );
    let crl = CertificateRevocationListDer::from_pem_file(d.join("crl.pem")).unwrap();
    for file in ["client.crt", "v3.crt"] {
        let v = f.verify_chain(
            &certs(d, file),
            Utc::now(),
            &RevokedCerts::default(),
            vec![crl.clone()],
        );
        assert_eq!(
            problem(&v),
            Some(CertProblem::Revoked),
            "{file}: {:?}",
            v.checks
        );
        let r = detail(&v, "revoked");
        assert!(
            r.starts_with("yes since ") && r.ends_with("(CRL of \"Corporate Device CA\")"),
            "{r}"
        );
    }
}

#[test]
fn v1_intermediate_is_never_a_ca() {
    let f = Fixture::new();
    // The intermediate made with the seed's command: v1, no basicConstraints.
    sh(
        f.path(),
        "openssl x509 -req -in inter.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out inter.crt -days 365 -sha256",
    );
    f.leaf("inter", "leaf.crt", 365, Some("client.ext"));
    let mut chain = certs(f.path(), "leaf.crt");
    chain.extend(certs(f.path(), "inter.crt"));
    let v = f.verify_chain(&chain, Utc::now(), &RevokedCerts::default(), Vec::new());
    assert_eq!(
        problem(&v),
        Some(CertProblem::Unsupported),
        "{:?}",
        v.checks
    );
    assert!(detail(&v, "chain").contains("never accepted as a CA"));
    // A v1 certificate trusted as a root does not make it a CA either.
    let mut m = TrustMaterial::default();
    m.trusted.insert("V1".into(), certs(f.path(), "inter.crt"));
    let trust = CertTrust::new(&["V1".to_string()], &m).unwrap();
    sh(
        f.path(),
        "openssl x509 -req -in client.csr -CA inter.crt -CAkey inter.key -CAcreateserial -out v1-under-v1.crt -days 365 -sha256",
    );
    let v = trust.verify(
        &certs(f.path(), "v1-under-v1.crt"),
        &RevokedCerts::default(),
        Utc::now(),
    );
    assert_eq!(
        problem(&v),
        Some(CertProblem::Unsupported),
        "{:?}",
        v.checks
    );
}

#[test]
fn v1_leaf_under_an_intermediate_is_unsupported() {
    let f = Fixture::new();
    sh(
        f.path(),
        "openssl x509 -req -in inter.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out inter.crt -days 365 -sha256 -extfile ca.ext",
    );
    f.leaf("inter", "leaf.crt", 365, None);
    let mut chain = certs(f.path(), "leaf.crt");
    chain.extend(certs(f.path(), "inter.crt"));
    let v = f.verify_chain(&chain, Utc::now(), &RevokedCerts::default(), Vec::new());
    assert_eq!(
        problem(&v),
        Some(CertProblem::Unsupported),
        "{:?}",
        v.checks
    );
    assert!(detail(&v, "chain").contains("signed directly by a trusted CA"));
    // The v3 leaf under the same intermediate is fine.
    f.leaf("inter", "v3.crt", 365, Some("client.ext"));
    let mut chain = certs(f.path(), "v3.crt");
    chain.extend(certs(f.path(), "inter.crt"));
    let v = f.verify_chain(&chain, Utc::now(), &RevokedCerts::default(), Vec::new());
    assert_eq!(problem(&v), None, "{:?}", v.checks);
}

#[test]
fn garbage_is_unsupported_and_nothing_is_untrusted() {
    let f = Fixture::new();
    let none = RevokedCerts::default();
    let garbage = CertificateDer::from(b"\x30\x03\x02\x01\x00 not a certificate".to_vec());
    let v = f.verify_chain(&[garbage], Utc::now(), &none, Vec::new());
    assert_eq!(problem(&v), Some(CertProblem::Unsupported));
    assert_eq!(v.checks[0].name, "parse");
    let v = f.verify_chain(&[], Utc::now(), &none, Vec::new());
    assert_eq!(problem(&v), Some(CertProblem::Untrusted));
}
