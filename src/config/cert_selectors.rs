//! The values of the certificate-name selectors (`san_dns`, `san_uri`, `san_email`, `san_ip`,
//! `spiffe_id`, `spki_sha256`), parsed the one way both validation (which places each error on
//! its value) and the policy engine use. Errors carry the index of the offending value in the
//! selector's list, so a finding can point at that element.

use ipnet::IpNet;
use regex::Regex;

use super::model::{NameMatch, OneOrMany};
use super::values::{full_match_regex, parse_cidr};
use crate::cert_names::{SpiffeId, normalize_sha256_hex};

/// A problem with one selector value: which element (0 for a single value or a table) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub index: usize,
    pub message: String,
    pub hint: Option<&'static str>,
}

fn at(index: usize, message: String, hint: Option<&'static str>) -> ValueError {
    ValueError {
        index,
        message,
        hint,
    }
}

/// `san_dns`, `san_uri` or `san_email` values: exact (any of) or one full-match regex.
#[derive(Debug, Clone)]
pub enum SanPattern {
    /// Exact values; DNS names lowercased (DNS SANs are compared lowercased).
    Exact(Vec<String>),
    Regex(Regex),
}

/// `spiffe_id` values: exact IDs (any of) or one ID whose path is a whole-segment prefix.
#[derive(Debug, Clone)]
pub enum SpiffePattern {
    Exact(Vec<SpiffeId>),
    Prefix(SpiffeId),
}

const REGEX_HINT: &str = "the pattern must match the whole value (it is anchored as ^(?:PATTERN)$); escape dots as \\\\.";
const SPIFFE_HINT: &str = "a SPIFFE ID is spiffe://TRUST-DOMAIN/PATH, e.g. \"spiffe://example.org/ns/prod/sa/deployer\"; match a subtree with { prefix = \"spiffe://example.org/ns/prod\" }";

fn exact_values(key: &str, values: &OneOrMany) -> Result<Vec<String>, ValueError> {
    let values = values.values();
    if values.is_empty() {
        return Err(at(
            0,
            format!("empty {key} list matches nothing"),
            Some("list at least one value, or remove the selector"),
        ));
    }
    if let Some(i) = values.iter().position(|v| v.is_empty()) {
        return Err(at(
            i,
            format!("an empty {key} value matches no certificate"),
            None,
        ));
    }
    Ok(values.to_vec())
}

/// Parse the value of `san_dns`, `san_uri` or `san_email` (`key`).
pub fn san_pattern(key: &str, m: &NameMatch) -> Result<SanPattern, ValueError> {
    match m {
        NameMatch::Exact(values) => {
            let mut v = exact_values(key, values)?;
            if key == "san_dns" {
                v.iter_mut().for_each(|d| d.make_ascii_lowercase());
            }
            Ok(SanPattern::Exact(v))
        }
        NameMatch::Regex(p) => full_match_regex(p)
            .map(SanPattern::Regex)
            .map_err(|e| at(0, e, Some(REGEX_HINT))),
        NameMatch::Prefix(_) => Err(at(
            0,
            format!(
                "{key} takes exact values or {{ regex = \"…\" }}; `prefix` is only for spiffe_id"
            ),
            Some("e.g. { san_dns = { regex = '[a-z0-9-]+\\.svc\\.example\\.com' } }"),
        )),
    }
}

/// Parse the value of `san_ip`: addresses or CIDRs.
pub fn san_ip(m: &NameMatch) -> Result<Vec<IpNet>, ValueError> {
    match m {
        NameMatch::Exact(values) => exact_values("san_ip", values)?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_cidr(v).map_err(|e| at(i, e, None)))
            .collect(),
        NameMatch::Regex(_) | NameMatch::Prefix(_) => Err(at(
            0,
            "san_ip takes addresses or CIDRs, not a regex or prefix".into(),
            Some("e.g. { san_ip = [\"10.0.0.0/8\", \"2001:db8::1\"] }"),
        )),
    }
}

/// Parse the value of `spiffe_id`, each ID checked against the SPIFFE ID specification.
pub fn spiffe_pattern(m: &NameMatch) -> Result<SpiffePattern, ValueError> {
    let parse = |i: usize, text: &str| {
        SpiffeId::parse(text).map_err(|e| {
            at(
                i,
                format!("{text:?} is not a valid SPIFFE ID: {e}"),
                Some(SPIFFE_HINT),
            )
        })
    };
    match m {
        NameMatch::Exact(values) => exact_values("spiffe_id", values)?
            .iter()
            .enumerate()
            .map(|(i, v)| parse(i, v))
            .collect::<Result<_, _>>()
            .map(SpiffePattern::Exact),
        NameMatch::Prefix(p) => parse(0, p).map(SpiffePattern::Prefix),
        NameMatch::Regex(_) => Err(at(
            0,
            "spiffe_id takes exact IDs or { prefix = \"spiffe://…\" }, not a regex".into(),
            Some(SPIFFE_HINT),
        )),
    }
}

/// Parse the value of `spki_sha256`: hex SHA-256 digests, normalised to lowercase without colons.
pub fn spki_pins(values: &OneOrMany) -> Result<Vec<String>, ValueError> {
    const HINT: &str = "compute it with: openssl x509 -in CERT -noout -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256";
    exact_values("spki_sha256", values)?
        .iter()
        .enumerate()
        .map(|(i, v)| normalize_sha256_hex(v).map_err(|e| at(i, e, Some(HINT))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> NameMatch {
        NameMatch::Exact(OneOrMany::One(s.into()))
    }

    #[test]
    fn dns_exact_values_are_lowercased_and_regexes_anchored() {
        let Ok(SanPattern::Exact(v)) = san_pattern("san_dns", &one("API.example.com")) else {
            panic!()
        };
        assert_eq!(v, ["api.example.com"]);
        let Ok(SanPattern::Regex(re)) = san_pattern(
            "san_dns",
            &NameMatch::Regex("[a-z]+\\.example\\.com".into()),
        ) else {
            panic!()
        };
        assert!(re.is_match("api.example.com"));
        assert!(!re.is_match("api.example.com.evil"));
        let e = san_pattern("san_uri", &NameMatch::Regex("(".into())).unwrap_err();
        assert!(e.message.contains("not a valid regex"), "{e:?}");
        assert!(san_pattern("san_email", &NameMatch::Prefix("x".into())).is_err());
    }

    #[test]
    fn bad_values_name_their_index() {
        let list = NameMatch::Exact(OneOrMany::Many(vec!["10.0.0.0/8".into(), "nope".into()]));
        assert_eq!(san_ip(&list).unwrap_err().index, 1);
        let ids = NameMatch::Exact(OneOrMany::Many(vec![
            "spiffe://example.org/a".into(),
            "spiffe://Example.org/a".into(),
        ]));
        let e = spiffe_pattern(&ids).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(e.message.contains("trust domain characters"), "{e:?}");
        let empty = NameMatch::Exact(OneOrMany::Many(vec![]));
        assert!(
            spiffe_pattern(&empty)
                .unwrap_err()
                .message
                .contains("empty")
        );
        assert!(spki_pins(&OneOrMany::One("abc".into())).is_err());
    }

    /// The findings of a policy file whose one policy includes `selector` (on line 10).
    fn findings(selector: &str) -> Vec<crate::config::Finding> {
        let text = format!(
            "[[app]]\nname = \"a\"\nhostnames = [\"a\"]\nupstream = \"http://127.0.0.1:9000\"\ntrusted_cas = [\"Corp CA\"]\n\n[[app.policy]]\nname = \"p\"\naction = \"non_identity\"\ninclude = [{selector}]\n"
        );
        match crate::config::parse(std::path::Path::new("policy.toml"), &text) {
            Ok(c) => c.warnings,
            Err(crate::config::ConfigError::Invalid { findings, .. }) => findings,
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[track_caller]
    fn only_error(selector: &str, col: usize, field: &str, message_part: &str) {
        let fs = findings(selector);
        assert_eq!(fs.len(), 1, "{fs:#?}");
        let f = &fs[0];
        assert_eq!((f.line, f.col), (10, col), "{f}");
        assert_eq!(f.field, field, "{f}");
        assert!(f.message.contains(message_part), "{f}");
    }

    #[test]
    fn valid_certificate_name_selectors_load_clean() {
        for sel in [
            r#"{ san_dns = "build.example.com" }"#,
            r#"{ san_dns = { regex = '[a-z]+\.example\.com' } }"#,
            r#"{ san_uri = ["urn:a", "urn:b"] }"#,
            r#"{ san_email = { regex = '.+@example\.com' } }"#,
            r#"{ san_ip = ["10.0.0.0/8", "::1"] }"#,
            r#"{ spiffe_id = "spiffe://example.org/ns/prod/sa/deployer" }"#,
            r#"{ spiffe_id = { prefix = "spiffe://example.org" } }"#,
        ] {
            assert!(findings(sel).is_empty(), "{sel}: {:#?}", findings(sel));
        }
    }

    #[test]
    fn bad_san_regex_points_at_the_pattern() {
        only_error(
            r#"{ san_dns = { regex = "[a-z" } }"#,
            24,
            "app[0].policy[0].include[0].san_dns",
            "is not a valid regex",
        );
    }

    #[test]
    fn bad_spiffe_id_points_at_the_bad_element() {
        only_error(
            r#"{ spiffe_id = ["spiffe://example.org/a", "spiffe://example.org/a/"] }"#,
            53,
            "app[0].policy[0].include[0].spiffe_id",
            "cannot end with `/`",
        );
        only_error(
            r#"{ spiffe_id = { prefix = "https://example.org" } }"#,
            26,
            "app[0].policy[0].include[0].spiffe_id",
            "not a valid SPIFFE ID",
        );
        only_error(
            r#"{ spiffe_id = { regex = ".*" } }"#,
            26,
            "app[0].policy[0].include[0].spiffe_id",
            "not a regex",
        );
    }

    #[test]
    fn forward_client_cert_without_trusted_cas_is_a_warning() {
        let text = "[[app]]\nname = \"a\"\nhostnames = [\"a\"]\nupstream = \"http://127.0.0.1:9000\"\nforward_client_cert = true\n";
        let c = crate::config::parse(std::path::Path::new("policy.toml"), text).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
        assert_eq!(c.warnings[0].line, 5);
        assert!(c.warnings[0].message.contains("forward_client_cert"));
    }

    #[test]
    fn bad_san_ip_and_pin_and_unknown_form() {
        only_error(
            r#"{ san_ip = "10.0.0/8" }"#,
            23,
            "app[0].policy[0].include[0].san_ip",
            "not a valid CIDR",
        );
        only_error(
            r#"{ spki_sha256 = "abc" }"#,
            28,
            "app[0].policy[0].include[0].spki_sha256",
            "not a SHA-256",
        );
        let fs = findings(r#"{ san_dns = { glob = "*.example.com" } }"#);
        assert_eq!(fs.len(), 1, "{fs:#?}");
        assert!(fs[0].message.contains("unknown field `glob`"), "{}", fs[0]);
        assert_eq!(fs[0].line, 10);
    }
}
