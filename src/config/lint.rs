//! Lint: a valid policy file checked against the store and the host for the habits that get
//! bot credentials abused — unauthenticated or wildcard policies, tokens shared across apps or
//! referenced by nothing, badly named or long-lived tokens, certificates valid longer than their
//! rotation cadence, X.509 v1 client certificates, a root CA key on the gate host, unknown CAs, and policies that can never
//! match because an earlier one decides first.
//! Every finding is a warning; each points at the policy or selector it is about when there is
//! one (token-level findings without a reference are about the file as a whole).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::{DateTime, Duration, Utc};

use super::doc::Doc;
use super::finding::{Finding, Severity, line_col, sort_findings};
use super::load::LoadedConfig;
use super::model::{Action, PolicyConfig, Selector};
use super::values::parse_cidr;
use crate::credential::follows_naming_convention;
use crate::rotation::CredentialKind;
use crate::rotation::cadence::CadencePolicy;
use crate::store::TokenRecord;
use crate::store::pki::CertRecord;
use crate::store::tokens::MAX_TOKEN_LIFETIME;

/// What lint knows beyond the file.
#[derive(Debug, Clone)]
pub struct LintContext {
    /// Every token in the store (revoked and expired included); `None` when the store could
    /// not be read (the checks against it are skipped, and the caller says so).
    pub tokens: Option<Vec<TokenRecord>>,
    /// Every certificate in the inventory; `None` when it could not be read (the cert checks
    /// are skipped, and the caller says so).
    pub certs: Option<Vec<CertRecord>>,
    /// Whether a root CA private key is stored on this host.
    pub root_key_on_host: bool,
    /// Names of the CAs in the store; `None` when unknown (then `trusted_cas` is not checked).
    pub known_ca_names: Option<Vec<String>>,
    pub now: DateTime<Utc>,
}

/// Lint a loaded policy file. Findings are warnings, in file order.
pub fn lint(cfg: &LoadedConfig, ctx: &LintContext) -> Vec<Finding> {
    let (doc, _) = Doc::parse(&cfg.path, &cfg.text);
    let mut l = Linter {
        doc: &doc,
        ctx,
        out: Vec::new(),
    };
    let refs = l.references(cfg);
    // What each app admits is asked of `policy/`, never worked out from the selectors here.
    let compiled = crate::policy::compile(&cfg.file).ok();
    l.token_references(&refs, compiled.as_ref());
    l.store_tokens(&refs);
    l.store_certs(cfg);
    l.policies(cfg);
    l.host();
    let mut out = l.out;
    sort_findings(&mut out);
    out
}

/// One `{ service_token = NAME }` in the file.
struct TokenRef {
    name: String,
    app: String,
    app_index: usize,
    span: Range<usize>,
}

struct Linter<'a, 'i> {
    doc: &'a Doc<'i>,
    ctx: &'a LintContext,
    out: Vec<Finding>,
}

impl Linter<'_, '_> {
    fn warn(&mut self, span: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let f = self
            .doc
            .finding(Severity::Warning, span, message, Some(hint.into()));
        self.out.push(f);
    }

    /// A warning at `span` if there is one, else about the whole file.
    fn warn_at(&mut self, span: Option<Range<usize>>, message: String, hint: String) {
        match span {
            Some(span) => self.warn(span, message, hint),
            None => self.out.push(Finding::whole_file(
                Severity::Warning,
                &self.doc.path,
                message,
                Some(hint),
            )),
        }
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.doc.text, span.start).0
    }

    fn references(&self, cfg: &LoadedConfig) -> Vec<TokenRef> {
        let mut refs = Vec::new();
        for (app_index, app) in cfg.file.app.iter().enumerate() {
            for p in &app.policy {
                for sel in p.include.iter().chain(&p.require) {
                    if let Selector::ServiceToken(name) = sel.get_ref() {
                        refs.push(TokenRef {
                            name: name.clone(),
                            app: app.name.get_ref().clone(),
                            app_index,
                            span: self.doc.selector_value(&sel.span(), 0),
                        });
                    }
                }
            }
        }
        refs
    }

    /// Names that exist nowhere (or only revoked/expired), and tokens several apps admit.
    fn token_references(&mut self, refs: &[TokenRef], policies: Option<&crate::policy::PolicySet>) {
        let now = self.ctx.now;
        let mut first_app: HashMap<&str, &TokenRef> = HashMap::new();
        for r in refs {
            let same_name: Vec<&TokenRecord> = self
                .ctx
                .tokens
                .iter()
                .flatten()
                .filter(|t| t.name == r.name)
                .collect();
            if self.ctx.tokens.is_some() && !same_name.iter().any(|t| t.is_live(now)) {
                let (message, hint) = match same_name.iter().max_by_key(|t| t.created_at) {
                    Some(t) if t.revoked_at.is_some() => (
                        format!("token {:?} is revoked; this selector admits nobody", r.name),
                        "remove the selector, or create a new token (`botgate rotate start token NAME` does both safely)".to_string(),
                    ),
                    Some(t) => (
                        format!("token {:?} expired on {}; this selector admits nobody", r.name, t.expires_at.format("%Y-%m-%d")),
                        format!("create a new one with `botgate token create {}`, or remove the selector", r.name),
                    ),
                    None => (
                        format!("no token named {:?} exists in the store", r.name),
                        format!("create it with `botgate token create {}`, or fix the name (see `botgate token list`)", r.name),
                    ),
                };
                self.warn(r.span.clone(), message, hint);
            }
            // A token named only in `require` (or never reaching a deciding policy) is not
            // admitted by that app, so it does not widen what a leak exposes there.
            let admitted = policies
                .and_then(|p| p.apps.get(r.app_index))
                .is_none_or(|app| {
                    !crate::policy::admitting_policies(
                        app,
                        crate::policy::Identity::Token { name: &r.name },
                    )
                    .is_empty()
                });
            if !admitted {
                continue;
            }
            match first_app.get(r.name.as_str()) {
                Some(first) if first.app_index != r.app_index => {
                    let msg = format!(
                        "token {:?} is also admitted by app {:?} (line {}); one token serving several apps widens what a leak exposes",
                        r.name,
                        first.app,
                        self.line(&first.span)
                    );
                    self.warn(
                        r.span.clone(),
                        msg,
                        "give each app its own token, e.g. <team>-<purpose>-<env> per app",
                    );
                }
                Some(_) => {}
                None => {
                    first_app.insert(&r.name, r);
                }
            }
        }
    }

    /// Live tokens no policy references, naming convention, lifetimes longer than a year.
    fn store_tokens(&mut self, refs: &[TokenRef]) {
        let now = self.ctx.now;
        let first_ref: HashMap<&str, Range<usize>> = refs
            .iter()
            .rev()
            .map(|r| (r.name.as_str(), r.span.clone()))
            .collect();
        // BTreeMap: one finding per name, in a stable order.
        let mut names: BTreeMap<&str, Option<&TokenRecord>> =
            refs.iter().map(|r| (r.name.as_str(), None)).collect();
        for t in self.ctx.tokens.iter().flatten().filter(|t| t.is_live(now)) {
            names.insert(&t.name, Some(t));
        }
        for (name, live) in names {
            let at = first_ref.get(name).cloned();
            if !follows_naming_convention(name) {
                self.warn_at(
                    at.clone(),
                    format!("token name {name:?} does not follow <team>-<purpose>-<env>"),
                    "e.g. ci-deploy-prod: the name is all an audit line or an alert shows, so make it say whose it is and where it runs".into(),
                );
            }
            let Some(t) = live else { continue };
            if at.is_none() {
                self.warn_at(
                    None,
                    format!(
                        "token {name:?} ({}) is live but no policy references it",
                        t.client_id
                    ),
                    format!("revoke it if nothing uses it: `botgate token revoke {name}`"),
                );
            }
            let lifetime = t.expires_at - t.created_at;
            if lifetime > MAX_TOKEN_LIFETIME {
                self.warn_at(
                    at,
                    format!(
                        "token {name:?} is valid for {} days, longer than a year",
                        lifetime.num_days()
                    ),
                    "rotate it to a token of at most 1y (`botgate rotate start token NAME`)".into(),
                );
            }
        }
    }

    /// Live X.509 v1 certificates (no EKU or SAN), and live certificates valid for longer than
    /// the rotation cadence that applies to their CN (certificates every 365 days unless
    /// `[rotation]` says otherwise). A day of slack covers the backdated `not_before` that
    /// issuers use against clock skew.
    fn store_certs(&mut self, cfg: &LoadedConfig) {
        let Some(certs) = &self.ctx.certs else { return };
        let now = self.ctx.now;
        let cadence = CadencePolicy::from_section(&cfg.file.rotation).unwrap_or_default();
        for c in certs
            .iter()
            .filter(|c| c.revoked_at.is_none() && c.not_after > now)
        {
            if crate::pki::verify::is_x509_v1(c.cert_pem.as_bytes()) {
                self.warn_at(
                    None,
                    format!(
                        "certificate {:?} (serial {}, {}) is X.509 v1: it has no extended key usage or SAN",
                        c.common_name,
                        c.serial,
                        c.source.as_str()
                    ),
                    crate::pki::verify::V1_ADVICE.into(),
                );
            }
            let every = cadence.cadence(CredentialKind::Cert, &c.common_name);
            let valid = c.not_after - c.not_before;
            if valid <= every + Duration::days(1) {
                continue;
            }
            let (span, source) = match cadence.deciding_rule(CredentialKind::Cert, &c.common_name) {
                Some(rule) => (
                    self.rotation_span("cadence", Some((rule.entry, "cert"))),
                    format!(
                        "the [rotation] cadence for CNs matching {:?}",
                        rule.pattern.as_str()
                    ),
                ),
                None if cfg.file.rotation.cert_cadence.is_some() => (
                    self.rotation_span("cert_cadence", None),
                    "[rotation] cert_cadence".to_string(),
                ),
                None => (None, "the default certificate cadence".to_string()),
            };
            self.warn_at(
                span,
                format!(
                    "certificate {:?} (serial {}, {}) is valid for {} days, longer than {source} ({} days): it outlives the date it is due for rotation",
                    c.common_name,
                    c.serial,
                    c.source.as_str(),
                    valid.num_days(),
                    every.num_days()
                ),
                format!(
                    "rotate it to a certificate of at most {}d: `botgate rotate start cert {}`",
                    every.num_days(),
                    c.serial
                ),
            );
        }
    }

    /// The span of `[rotation]` `field`, or of key `key` of its entry `i` for `Some((i, key))`.
    fn rotation_span(&self, field: &str, entry: Option<(usize, &str)>) -> Option<Range<usize>> {
        let section = self
            .doc
            .root
            .get_ref()
            .get("rotation")?
            .get_ref()
            .as_table()?;
        let value = section.get(field)?;
        let Some((i, key)) = entry else {
            return Some(value.span());
        };
        let entry = value.get_ref().as_array()?.get(i)?;
        Some(
            entry
                .get_ref()
                .as_table()
                .and_then(|t| t.get(key))
                .map_or(entry.span(), |v| v.span()),
        )
    }

    fn policies(&mut self, cfg: &LoadedConfig) {
        for app in &cfg.file.app {
            if let Some(known) = &self.ctx.known_ca_names {
                for ca in &app.trusted_cas {
                    if !known.iter().any(|k| k == ca.get_ref()) {
                        self.warn(
                            ca.span(),
                            format!("CA {:?} is not in the store, so no client certificate can chain to it", ca.get_ref()),
                            "see `botgate ca list`; create one with `botgate ca init` or add one with `botgate ca trust PEM --name NAME`",
                        );
                    }
                }
            }
            for (j, p) in app.policy.iter().enumerate() {
                self.policy(p);
                if let Some(earlier) = app.policy[..j].iter().find(|e| shadows(e, p)) {
                    let msg = format!(
                        "policy {:?} can never match: policy {:?} above (line {}) already matches every request it could",
                        p.name.get_ref(),
                        earlier.name.get_ref(),
                        self.line(&earlier.name.span())
                    );
                    let hint = format!(
                        "policies are tried in file order; move this one above {:?}, or narrow that one",
                        earlier.name.get_ref()
                    );
                    self.warn(p.name.span(), msg, hint);
                }
            }
        }
    }

    fn policy(&mut self, p: &PolicyConfig) {
        if *p.action.get_ref() == Action::Bypass {
            self.warn(
                p.action.span(),
                "bypass forwards requests without any authentication (they are still audited)",
                "use service_auth or non_identity; if this must stay open, limit it with an ip selector",
            );
        }
        for sel in p.include.iter().chain(&p.require) {
            if *sel.get_ref() == Selector::AnyServiceToken(true) {
                self.warn(
                    sel.span(),
                    "any_service_token admits every live token, including ones created later for something else",
                    "name the tokens this policy is for: { service_token = \"ci-deploy-prod\" }",
                );
            }
        }
    }

    fn host(&mut self) {
        if self.ctx.root_key_on_host {
            self.warn_at(
                None,
                "a root CA private key is stored on this host; whoever takes the gate host can mint any identity".into(),
                "keep the root offline: create CAs with `botgate ca init --root-key-out FILE` and move FILE off this host".into(),
            );
        }
    }
}

/// Whether `earlier` decides every request `later` could match, so `later` is never reached:
/// `earlier` has no require/exclude and each selector in `later`'s include is covered by one of
/// `earlier`'s (include is any-of; `later`'s require/exclude only narrow it further).
fn shadows(earlier: &PolicyConfig, later: &PolicyConfig) -> bool {
    earlier.require.is_empty()
        && earlier.exclude.is_empty()
        && !later.include.is_empty()
        && later.include.iter().all(|b| {
            earlier
                .include
                .iter()
                .any(|a| covers(a.get_ref(), b.get_ref()))
        })
}

/// Whether every request matching selector `b` also matches `a`.
fn covers(a: &Selector, b: &Selector) -> bool {
    match (a, b) {
        (Selector::Everyone(true), _) => true,
        (Selector::AnyServiceToken(true), Selector::ServiceToken(_)) => true,
        (Selector::Ip(x), Selector::Ip(y)) => {
            let outer: Vec<_> = x
                .values()
                .iter()
                .filter_map(|s| parse_cidr(s).ok())
                .collect();
            y.values()
                .iter()
                .all(|s| parse_cidr(s).is_ok_and(|net| outer.iter().any(|o| o.contains(&net))))
        }
        (Selector::Country(x), Selector::Country(y))
        | (Selector::CertCountry(x), Selector::CertCountry(y)) => {
            y.values().iter().all(|c| x.values().contains(c))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
#[path = "lint_tests.rs"]
mod tests;
