//! Typed values inside the policy file, parsed the one way both validation and the policy
//! engine use: CIDRs (a bare IP is a /32 or /128), full-match regexes for certificate
//! selectors, country codes, `http(s)://host:port[/path]` upstreams and their TLS settings.
//! Errors are short sentences meant to follow the quoted value in a finding.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use regex::Regex;

use super::model::AppConfig;
use crate::upstream_tls::UpstreamTlsSettings;

/// Parse a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare IP (one address).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!(
            "{text:?} is not a valid CIDR (expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)"
        )),
    }
}

/// Compile a certificate selector pattern (`common_name`, `issuer`, `organization`) as a FULL
/// match: the pattern is anchored as `^(?:PATTERN)$`, so `device-.*` does not match
/// `evil-device-1`.
pub fn full_match_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        let text = e.to_string();
        // regex::Error renders a caret diagram; the last `error:` line is the sentence we want.
        let reason = text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| text.lines().last().unwrap_or_default().trim().to_string());
        format!("{pattern:?} is not a valid regex: {reason}")
    })
}

/// An ISO 3166-1 alpha-2 code: exactly two uppercase ASCII letters.
pub fn check_country(code: &str) -> Result<(), String> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Err(format!(
            "{code:?} is not a country code: write it in uppercase, {:?}",
            code.to_ascii_uppercase()
        ))
    } else {
        Err(format!(
            "{code:?} is not a country code (expected two uppercase letters, ISO 3166-1 alpha-2, e.g. \"SG\")"
        ))
    }
}

/// Parse an upstream URL: `http://host:port` or `https://host:port`, with an optional base
/// path; user info, queries and fragments are refused.
pub fn parse_upstream(text: &str) -> Result<hyper::Uri, String> {
    if !is_https_upstream(text) && !text.to_ascii_lowercase().starts_with("http://") {
        return Err(format!(
            "{text:?} is not an http:// or https:// URL (expected e.g. http://127.0.0.1:9000)"
        ));
    }
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a valid URL: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!(
            "{text:?} has no host (expected e.g. http://127.0.0.1:9000)"
        ));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{text:?}: user info (user:password@) is not allowed in an upstream URL"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!(
            "{text:?} has no host (expected e.g. http://127.0.0.1:9000)"
        ));
    }
    if uri.port_u16().is_none() {
        return Err(format!(
            "{text:?} has no port: write it explicitly, e.g. http://{}:80",
            authority.host()
        ));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(format!(
            "{text:?}: an upstream URL may have a base path but no query or fragment"
        ));
    }
    Ok(uri)
}

/// Whether `upstream` is an `https://` URL (its connections use the app's TLS settings).
pub fn is_https_upstream(upstream: &str) -> bool {
    upstream
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// An app's `upstream_*` settings for `upstream_tls`.
pub fn upstream_tls_settings(app: &AppConfig) -> UpstreamTlsSettings {
    let path = |p: &Option<toml::Spanned<PathBuf>>| p.as_ref().map(|p| p.get_ref().clone());
    UpstreamTlsSettings {
        ca: path(&app.upstream_ca),
        server_name: app
            .upstream_server_name
            .as_ref()
            .map(|n| n.get_ref().clone()),
        client_cert: path(&app.upstream_client_cert),
        client_key: path(&app.upstream_client_key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_accepts_nets_and_bare_ips() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert!(
            parse_cidr("10.0.0/8")
                .unwrap_err()
                .contains("not a valid CIDR")
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }

    #[test]
    fn regex_is_full_match() {
        let re = full_match_regex("device-[0-9]+").unwrap();
        assert!(re.is_match("device-12"));
        assert!(!re.is_match("evil-device-12"));
        assert!(!re.is_match("device-12.evil"));
        let err = full_match_regex("device-[0-9").unwrap_err();
        assert!(err.contains("unclosed character class"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn countries() {
        assert!(check_country("SG").is_ok());
        assert!(check_country("sg").unwrap_err().contains("\"SG\""));
        assert!(check_country("SGP").is_err());
    }

    #[test]
    fn upstreams() {
        assert!(parse_upstream("http://127.0.0.1:9000").is_ok());
        assert_eq!(
            parse_upstream("http://backend:8080/api").unwrap().path(),
            "/api"
        );
        assert!(parse_upstream("https://x:1").is_ok());
        assert!(parse_upstream("HTTPS://x:1").is_ok());
        assert!(is_https_upstream("HTTPS://x:1") && !is_https_upstream("http://x:1"));
        assert!(
            parse_upstream("127.0.0.1:9000")
                .unwrap_err()
                .contains("not an http:// or https://")
        );
        assert!(parse_upstream("ftp://x:1").is_err());
        assert!(parse_upstream("http://x").unwrap_err().contains("no port"));
        assert!(parse_upstream("http://u:p@x:1").is_err());
        assert!(parse_upstream("http://x:1/?a=b").is_err());
    }
}
