//! Semantic validation of a deserialized policy file: values that parse but cannot work (bad
//! CIDRs, regexes, country codes, upstream URLs, upstream TLS files that cannot be read or
//! used), apps that clash (duplicate names or hostnames), policies that can never match, and
//! `[rotation]` cadences (durations, keys, name patterns, cadences longer than a credential can
//! live). Needs no store; store-aware checks are lint.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::cert_selectors;
use super::doc::Doc;
use super::finding::{Finding, Severity, line_col};
use super::model::{
    Action, AppConfig, GateSection, MAX_HEADER_BYTES_RANGE, MAX_HEADERS_RANGE, PolicyConfig,
    PolicyFile, Selector,
};
use super::values::{
    check_country, full_match_regex, is_https_upstream, parse_cidr, parse_upstream,
    upstream_tls_settings,
};
use crate::rotation::cadence::{CadencePlace, CadencePolicy};
use crate::upstream_tls::{TlsProfiles, TlsSetting};

/// Every validation finding for `file` (errors and warnings, unsorted).
pub(crate) fn validate(file: &PolicyFile, doc: &Doc<'_>) -> Vec<Finding> {
    let has_geo = file.geo.csv.is_some() || file.geo.mmdb.is_some();
    let mut v = Validator {
        doc,
        has_geo,
        tls_profiles: TlsProfiles::default(),
        oidc_issuers: file
            .oidc_issuer
            .iter()
            .map(|i| i.name.get_ref().clone())
            .collect(),
        out: Vec::new(),
    };
    v.gate(file);
    v.oidc_issuers(file);
    v.apps(&file.app);
    v.rotation(file);
    v.store(file);
    v.tokens(file);
    v.out
}

struct Validator<'a, 'i> {
    doc: &'a Doc<'i>,
    /// Whether `[geo]` names a database; without one every request's country is unknown.
    has_geo: bool,
    /// Built as compiling builds them, so a file read here is read the same way by the gate.
    tls_profiles: TlsProfiles,
    /// The `[[oidc_issuer]]` names `oidc` selectors may use.
    oidc_issuers: std::collections::HashSet<String>,
    out: Vec<Finding>,
}

/// Claims that narrow an OIDC selector to one repository, project, pipeline or workload
/// (an issuer such as GitHub's signs tokens for every job of every repository).
const NARROWING_CLAIMS: &[&str] = &[
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "job_workflow_ref",
    "project_path",
    "project_id",
    "namespace_path",
    "namespace_id",
    "pipeline_slug",
    "organization_slug",
    "organization_id",
    "project_slug",
];

impl Validator<'_, '_> {
    /// The span of `key` in `app`'s table, else of its name (the key is absent).
    fn app_key_span(&self, app: &AppConfig, key: &str) -> Range<usize> {
        self.doc
            .sibling(&app.name.span(), key)
            .unwrap_or(app.name.span())
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let f = self
            .doc
            .finding(Severity::Error, span, message, hint.map(str::to_string));
        self.out.push(f);
    }

    fn warn(&mut self, span: Range<usize>, message: impl Into<String>, hint: Option<&str>) {
        let f = self
            .doc
            .finding(Severity::Warning, span, message, hint.map(str::to_string));
        self.out.push(f);
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.doc.text, span.start).0
    }

    /// `[store] url`: a URL botgate can use (checked without connecting). An `env:VAR` whose
    /// variable is unset is checked where the store is opened, not here (`policy check` may
    /// run where the secret is not).
    fn store(&mut self, file: &PolicyFile) {
        let Some(url) = &file.store.url else { return };
        if url.get_ref().starts_with("env:") {
            return;
        }
        if let Err(e) = crate::store::StoreLocation::check_url(url.get_ref()) {
            self.error(
                url.span(),
                e,
                Some("write it as postgres://USER@HOST:PORT/DB, or env:VAR to keep a password out of the file"),
            );
        }
    }

    /// `[[oidc_issuer]]`s: each parses as the gate parses it (the problem on its key), and no
    /// two share a name or an issuer URL.
    fn oidc_issuers(&mut self, file: &PolicyFile) {
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut urls: HashMap<String, Range<usize>> = HashMap::new();
        for i in &file.oidc_issuer {
            if let Err(e) = crate::oidc::IssuerSettings::from_config(i) {
                let span = self
                    .doc
                    .sibling(&i.name.span(), e.key)
                    .unwrap_or(i.name.span());
                self.error(span, e.message, Some(e.hint));
            }
            let name = i.name.get_ref();
            if let Some(first) = names.get(name) {
                let msg = format!(
                    "duplicate [[oidc_issuer]] name {name:?} (first at line {})",
                    self.line_of(first)
                );
                self.error(
                    i.name.span(),
                    msg,
                    Some("selectors and identities name issuers by it"),
                );
            } else {
                names.insert(name.clone(), i.name.span());
            }
            let url = i.issuer.get_ref();
            if let Some(first) = urls.get(url) {
                let msg = format!(
                    "issuer {url:?} is already configured (line {})",
                    self.line_of(first)
                );
                self.error(
                    i.issuer.span(),
                    msg,
                    Some("one [[oidc_issuer]] per iss; list several audiences in it"),
                );
            } else {
                urls.insert(url.clone(), i.issuer.span());
            }
        }
    }

    /// `claims = { … }` of an `oidc` selector or an `oidc_claim`: each pattern compiles.
    fn claims(
        &mut self,
        span: &Range<usize>,
        claims: &std::collections::BTreeMap<String, super::model::ClaimValue>,
    ) {
        for (name, value) in claims {
            if let Err(e) = crate::credential::oidc::ClaimPattern::parse(&value.0) {
                self.error(
                    span.clone(),
                    format!("claim {name}: {e}"),
                    Some(
                        "a value written ^…$ is a full-match regex; anything else matches exactly",
                    ),
                );
            }
        }
    }

    /// `[tokens]` retirement periods.
    fn tokens(&mut self, file: &PolicyFile) {
        if let Err((key, message)) = file.tokens.periods() {
            let span = self
                .doc
                .root
                .get_ref()
                .get("tokens")
                .and_then(|t| t.get_ref().as_table())
                .and_then(|t| t.get(key))
                .map(|v| v.span())
                .unwrap_or(0..0);
            self.error(
                span,
                format!("{key}: {message}"),
                Some("e.g. disable_after_inactive = \"90d\"; leave it out to keep unused tokens"),
            );
        }
    }

    fn gate(&mut self, file: &PolicyFile) {
        for proxy in &file.gate.trusted_proxies {
            self.cidr(proxy.span(), proxy.get_ref());
        }
        let gate = self
            .doc
            .root
            .get_ref()
            .get("gate")
            .and_then(|g| g.get_ref().as_table());
        let key_span = |k: &str| gate.and_then(|g| g.get(k)).map(|v| v.span());
        match (key_span("tls_cert"), key_span("tls_key")) {
            (Some(span), None) => self.error(span, "tls_cert is set but tls_key is not", Some("set both (PEM files), or neither to have the local CA issue the server certificate")),
            (None, Some(span)) => self.error(span, "tls_key is set but tls_cert is not", Some("set both (PEM files), or neither to have the local CA issue the server certificate")),
            _ => {}
        }
        if let Some(node) = &file.gate.node
            && let Some(span) = key_span("node")
            && !crate::config::model::valid_node_name(node)
        {
            let message = format!("node {node:?} is not a node name");
            self.error(span, message, Some("use 1 to 64 letters, digits, '.', '_' or '-' (e.g. \"gate-a\"); the default is the host name"));
        }
        if let Err(e) = crate::assertion::Settings::from_gate(&file.gate) {
            let span = key_span(e.key).unwrap_or(0..0);
            self.error(span, e.message, Some(e.hint));
        }
        let defaults = GateSection::default();
        let limits = [
            (
                "max_header_bytes",
                file.gate.max_header_bytes,
                MAX_HEADER_BYTES_RANGE,
                defaults.max_header_bytes,
                "bytes",
            ),
            (
                "max_headers",
                file.gate.max_headers,
                MAX_HEADERS_RANGE,
                defaults.max_headers,
                "headers",
            ),
        ];
        for (key, value, range, default, unit) in limits {
            if let Some(span) = key_span(key).filter(|_| !range.contains(&value)) {
                let message = format!(
                    "{value} is out of range ({} to {} {unit})",
                    range.start(),
                    range.end()
                );
                let hint = format!("requests over the limit get 431; the default is {default}");
                self.error(span, message, Some(&hint));
            }
        }
    }

    /// `[rotation]` cadences, parsed by the one parser the rotation code uses; each problem is
    /// placed on the value (or entry) it is about.
    fn rotation(&mut self, file: &PolicyFile) {
        let (_, problems) = CadencePolicy::check(&file.rotation);
        if problems.is_empty() {
            return;
        }
        let section = self
            .doc
            .root
            .get_ref()
            .get("rotation")
            .and_then(|r| r.get_ref().as_table());
        let entry = |i: usize| {
            section
                .and_then(|t| t.get("cadence"))
                .and_then(|c| c.get_ref().as_array())
                .and_then(|a| a.get(i))
        };
        let whole = self.doc.root.get_ref().get("rotation").map(|r| r.span());
        for p in problems {
            let span = match &p.place {
                CadencePlace::Field(f) => section.and_then(|t| t.get(*f)).map(|v| v.span()),
                CadencePlace::Entry(i) => entry(*i).map(|e| e.span()),
                CadencePlace::EntryKey(i, key) => entry(*i).and_then(|e| {
                    e.get_ref()
                        .as_table()
                        .and_then(|t| t.get(key.as_str()))
                        .map(|v| v.span())
                        .or_else(|| Some(e.span()))
                }),
            }
            .or_else(|| whole.clone())
            .unwrap_or(0..0);
            let severity = if p.error {
                Severity::Error
            } else {
                Severity::Warning
            };
            let f = self.doc.finding(severity, span, p.message, p.hint);
            self.out.push(f);
        }
    }

    fn cidr(&mut self, span: Range<usize>, text: &str) {
        match parse_cidr(text) {
            Err(e) => self.error(span, e, None),
            Ok(net) if net.trunc() != net => self.warn(
                span,
                format!("{text:?} has host bits set; it means {}", net.trunc()),
                Some(&format!(
                    "write {:?} if that is what you mean",
                    net.trunc().to_string()
                )),
            ),
            Ok(_) => {}
        }
    }

    fn apps(&mut self, apps: &[AppConfig]) {
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut hosts: HashMap<String, (String, Range<usize>)> = HashMap::new();
        for app in apps {
            let name = app.name.get_ref();
            match names.get(&name.to_ascii_lowercase()) {
                Some(first) => {
                    let msg = format!(
                        "duplicate app name {name:?} (first defined at line {})",
                        self.line_of(first)
                    );
                    self.error(
                        app.name.span(),
                        msg,
                        Some("app names appear in audit events and must be unique"),
                    );
                }
                None => {
                    names.insert(name.to_ascii_lowercase(), app.name.span());
                }
            }
            if app.hostnames.is_empty() {
                let span = self.app_key_span(app, "hostnames");
                self.error(
                    span,
                    "app has no hostnames, so no request can reach it",
                    Some("e.g. hostnames = [\"api.example.com\"]"),
                );
            }
            for host in &app.hostnames {
                self.hostname(name, host, &mut hosts);
            }
            match parse_upstream(app.upstream.get_ref()) {
                Err(e) => self.error(app.upstream.span(), e, None),
                Ok(_) => self.upstream_tls(app),
            }
            if let Some(aud) = &app.aud {
                let text = aud.get_ref();
                if text.is_empty() || text.len() > 256 || text.chars().any(char::is_control) {
                    self.error(
                        aud.span(),
                        format!("aud {text:?} cannot be an audience tag"),
                        Some("1 to 256 printable characters; leave it out for a random tag the store keeps (see `botgate policy check`)"),
                    );
                }
            }
            self.policies(app);
        }
    }

    /// The `upstream_*` TLS settings: only with an `https://` upstream, and every file they name
    /// readable and usable (each problem on the key it is about).
    fn upstream_tls(&mut self, app: &AppConfig) {
        let keys = [
            ("upstream_ca", app.upstream_ca.as_ref().map(|v| v.span())),
            (
                "upstream_server_name",
                app.upstream_server_name.as_ref().map(|v| v.span()),
            ),
            (
                "upstream_client_cert",
                app.upstream_client_cert.as_ref().map(|v| v.span()),
            ),
            (
                "upstream_client_key",
                app.upstream_client_key.as_ref().map(|v| v.span()),
            ),
        ];
        if !is_https_upstream(app.upstream.get_ref()) {
            for (key, span) in keys {
                if let Some(span) = span {
                    let message = format!(
                        "{key} only applies to https:// upstreams, and upstream is {:?}",
                        app.upstream.get_ref()
                    );
                    self.error(
                        span,
                        message,
                        Some("write upstream = \"https://HOST:PORT\", or remove the setting"),
                    );
                }
            }
            return;
        }
        let Err(e) = self.tls_profiles.get(&upstream_tls_settings(app)) else {
            return;
        };
        let span = match e.setting {
            TlsSetting::SystemRoots => None,
            TlsSetting::Ca => keys[0].1.clone(),
            TlsSetting::ServerName => keys[1].1.clone(),
            TlsSetting::ClientCert => keys[2].1.clone(),
            TlsSetting::ClientKey => keys[3].1.clone(),
        }
        .unwrap_or(app.upstream.span());
        self.error(span, e.message, e.hint);
    }

    fn hostname(
        &mut self,
        app: &str,
        host: &Spanned<String>,
        seen: &mut HashMap<String, (String, Range<usize>)>,
    ) {
        let h = host.get_ref();
        if h.is_empty()
            || h.contains("://")
            || h.contains('/')
            || h.chars().any(char::is_whitespace)
        {
            self.error(
                host.span(),
                format!("{h:?} is not a hostname"),
                Some(
                    "write the bare host a request's Host header carries, e.g. \"api.example.com\"",
                ),
            );
            return;
        }
        let key = h.to_ascii_lowercase();
        match seen.get(&key) {
            Some((other, first)) => {
                let msg = format!(
                    "hostname {h:?} is already used by app {other:?} (line {})",
                    self.line_of(first)
                );
                self.error(
                    host.span(),
                    msg,
                    Some("the Host header must choose exactly one app"),
                );
            }
            None => {
                seen.insert(key, (app.to_string(), host.span()));
            }
        }
    }

    fn policies(&mut self, app: &AppConfig) {
        let mut names: HashMap<&str, Range<usize>> = HashMap::new();
        for p in &app.policy {
            if let Some(first) = names.get(p.name.get_ref().as_str()) {
                let msg = format!(
                    "duplicate policy name {:?} in this app (first at line {})",
                    p.name.get_ref(),
                    self.line_of(first)
                );
                self.warn(
                    p.name.span(),
                    msg,
                    Some("audit events name the deciding policy; give each a distinct name"),
                );
            } else {
                names.insert(p.name.get_ref(), p.name.span());
            }
            self.policy(p);
        }
        let has_non_identity = app
            .policy
            .iter()
            .any(|p| *p.action.get_ref() == Action::NonIdentity);
        if app.forward_client_cert && app.trusted_cas.is_empty() {
            let span = self.app_key_span(app, "forward_client_cert");
            self.warn(
                span,
                "forward_client_cert is on but trusted_cas is empty, so no client certificate is ever verified or forwarded",
                Some("add trusted_cas = [\"<name from `botgate ca list`>\"]"),
            );
        }
        if has_non_identity && app.trusted_cas.is_empty() {
            let span = self.app_key_span(app, "trusted_cas");
            self.warn(
                span,
                "app has non_identity policies but trusted_cas is empty, so no client certificate can be verified for it",
                Some("add trusted_cas = [\"<name from `botgate ca list`>\"]"),
            );
        }
    }

    fn policy(&mut self, p: &PolicyConfig) {
        let action = *p.action.get_ref();
        if p.include.is_empty() {
            let span = self
                .doc
                .sibling(&p.name.span(), "include")
                .unwrap_or(p.name.span());
            self.error(span, "include is empty, so this policy can never match", Some("add at least one selector, e.g. include = [{ service_token = \"ci-deploy-prod\" }]"));
        }
        for sel in p.include.iter().chain(&p.require).chain(&p.exclude) {
            self.selector(sel);
        }
        self.rate_limit(p);
        self.broad_oidc(p);
        let is_token = |s: &Spanned<Selector>| {
            matches!(
                s.get_ref(),
                Selector::ServiceToken(_) | Selector::AnyServiceToken(true)
            )
        };
        let is_workload = |s: &Spanned<Selector>| matches!(s.get_ref(), Selector::Oidc(_));
        if action == Action::ServiceAuth
            && !p.include.is_empty()
            && !p.include.iter().any(|s| is_token(s) || is_workload(s))
        {
            self.warn(
                p.action.span(),
                "service_auth policy has no service_token, any_service_token or oidc selector in include",
                Some("service_auth is for service tokens and OIDC workloads: add { service_token = \"NAME\" }, or use another action"),
            );
        }
        if action == Action::NonIdentity {
            for sel in p.include.iter().chain(&p.require).filter(|s| is_token(s)) {
                self.warn(
                    sel.span(),
                    format!("{} selector in a non_identity policy: non_identity admits client certificates, not service tokens", sel.get_ref().key()),
                    Some("move token selectors to a service_auth policy"),
                );
            }
        }
    }

    /// An `oidc` include that names no repository-, project- or subject-level claim (in its
    /// own `claims` or in the policy's `require` `oidc_claim`s) admits every job of every
    /// repository on that issuer: warn, as for "allow any service token".
    fn broad_oidc(&mut self, p: &PolicyConfig) {
        if !matches!(
            *p.action.get_ref(),
            Action::ServiceAuth | Action::Allow | Action::Bypass
        ) {
            return;
        }
        let narrows = |claims: &std::collections::BTreeMap<String, super::model::ClaimValue>| {
            claims
                .keys()
                .any(|k| NARROWING_CLAIMS.contains(&k.as_str()))
        };
        let required = p
            .require
            .iter()
            .any(|s| matches!(s.get_ref(), Selector::OidcClaim(c) if narrows(c)));
        if required {
            return;
        }
        for sel in &p.include {
            if let Selector::Oidc(o) = sel.get_ref()
                && !narrows(&o.claims)
            {
                let msg = format!(
                    "this oidc selector admits every workload issuer {:?} signs a token for (on a shared CI issuer: every job of every repository)",
                    o.issuer
                );
                self.warn(
                    sel.span(),
                    msg,
                    Some("name the workload, e.g. claims = { repository = \"example/api\" } (or sub, project_path, job_workflow_ref)"),
                );
            }
        }
    }

    /// `rate_limit`, `burst`, `rate_limit_mode`: a rate botgate can enforce, a burst of at
    /// least 1, and neither of the other two without a rate.
    fn rate_limit(&mut self, p: &PolicyConfig) {
        let burst = p.burst.as_ref().map(|b| *b.get_ref());
        match &p.rate_limit {
            Some(text) => {
                if let Err(e) = crate::bounds::RateLimit::parse(text.get_ref(), None) {
                    self.error(text.span(), e.to_string(), Some("e.g. rate_limit = \"600/min\" (units s, min, h, d), with an optional burst = 50"));
                }
                if let (Some(b), Some(n)) = (&p.burst, burst)
                    && n < 1
                {
                    let e = crate::bounds::BoundsError::Burst { burst: n };
                    self.error(b.span(), e.to_string(), None);
                }
                if *p.action.get_ref() == Action::Block {
                    self.warn(
                        text.span(),
                        "rate_limit on a block policy never applies: it refuses every request it matches",
                        Some("remove it, or move it to the policy that admits these clients"),
                    );
                }
            }
            None => {
                for (key, span) in [
                    ("burst", p.burst.as_ref().map(|b| b.span())),
                    (
                        "rate_limit_mode",
                        p.rate_limit_mode.as_ref().map(|m| m.span()),
                    ),
                ] {
                    if let Some(span) = span {
                        self.error(
                            span,
                            format!("{key} without rate_limit has no effect"),
                            Some("add rate_limit = \"600/min\" (or remove it)"),
                        );
                    }
                }
            }
        }
    }

    fn countries(&mut self, sel: &Spanned<Selector>) {
        let (Selector::Country(codes) | Selector::CertCountry(codes)) = sel.get_ref() else {
            return;
        };
        let span = sel.span();
        for (i, code) in codes.values().iter().enumerate() {
            if let Err(e) = check_country(code) {
                self.error(self.doc.selector_value(&span, i), e, None);
            }
        }
        if codes.values().is_empty() {
            self.error(
                span,
                "empty country list matches nothing",
                Some("e.g. { country = [\"SG\", \"VN\"] }"),
            );
        }
    }

    /// Report a certificate-name selector's bad value on the element it is about.
    fn cert_value(&mut self, span: &Range<usize>, problem: Option<cert_selectors::ValueError>) {
        if let Some(e) = problem {
            let at = self.doc.selector_value(span, e.index);
            self.error(at, e.message, e.hint);
        }
    }

    fn selector(&mut self, sel: &Spanned<Selector>) {
        let span = sel.span();
        match sel.get_ref() {
            Selector::ServiceToken(name) => {
                if let Err(e) = crate::credential::validate_token_name(name) {
                    self.error(
                        self.doc.selector_value(&span, 0),
                        format!("can never match a token: {e}"),
                        None,
                    );
                }
            }
            Selector::AnyServiceToken(b)
            | Selector::ValidCertificate(b)
            | Selector::Everyone(b) => {
                if !b {
                    let key = sel.get_ref().key();
                    self.warn(
                        span,
                        format!("`{key} = false` matches nothing"),
                        Some(&format!("write `{key} = true`, or remove the selector")),
                    );
                }
            }
            Selector::CommonName(p) | Selector::Issuer(p) | Selector::Organization(p) => {
                if let Err(e) = full_match_regex(p) {
                    let hint = "the pattern must match the whole value (it is anchored as ^(?:PATTERN)$); escape dots as \\\\.";
                    self.error(self.doc.selector_value(&span, 0), e, Some(hint));
                }
            }
            Selector::Country(_) if !self.has_geo => {
                self.warn(
                    span.clone(),
                    "country is unknown for every request without a [geo] database, so this selector never matches",
                    Some("add [geo] csv = \"PATH\" or mmdb = \"PATH\" (see the policy file reference)"),
                );
                self.countries(sel);
            }
            Selector::Country(_) | Selector::CertCountry(_) => self.countries(sel),
            Selector::SanDns(m) | Selector::SanUri(m) | Selector::SanEmail(m) => {
                let key = sel.get_ref().key();
                self.cert_value(&span, cert_selectors::san_pattern(key, m).err());
            }
            Selector::SanIp(m) => self.cert_value(&span, cert_selectors::san_ip(m).err()),
            Selector::SpiffeId(m) => {
                self.cert_value(&span, cert_selectors::spiffe_pattern(m).err());
            }
            Selector::SpkiSha256(pins) => {
                self.cert_value(&span, cert_selectors::spki_pins(pins).err());
            }
            Selector::Oidc(o) => {
                if !self.oidc_issuers.contains(&o.issuer) {
                    let mut known: Vec<&str> =
                        self.oidc_issuers.iter().map(String::as_str).collect();
                    known.sort_unstable();
                    let hint = match known.is_empty() {
                        true => {
                            "add an [[oidc_issuer]] with this name (see the README's OIDC section)"
                                .to_string()
                        }
                        false => format!("configured issuers: {}", known.join(", ")),
                    };
                    self.error(
                        span.clone(),
                        format!(
                            "oidc selector names issuer {:?}, which no [[oidc_issuer]] defines",
                            o.issuer
                        ),
                        Some(&hint),
                    );
                }
                self.claims(&span, &o.claims);
            }
            Selector::OidcClaim(c) => {
                if c.is_empty() {
                    self.error(
                        span.clone(),
                        "oidc_claim is empty, so it checks nothing",
                        Some("e.g. { oidc_claim = { ref = \"refs/heads/main\" } }"),
                    );
                }
                self.claims(&span, c);
            }
            Selector::Ip(nets) => {
                for (i, net) in nets.values().iter().enumerate() {
                    self.cidr(self.doc.selector_value(&span, i), net);
                }
                if nets.values().is_empty() {
                    self.error(
                        span,
                        "empty ip list matches nothing",
                        Some("e.g. { ip = [\"10.0.0.0/8\"] }"),
                    );
                }
            }
        }
    }
}

// Tested through `load::parse` in load_tests.rs, where each finding's line:col is asserted.
