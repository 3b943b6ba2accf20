//! Load + validation: every error kind with its exact line:col and field.

use super::*;
use crate::config::finding::Severity;

/// Line numbers: 1 [gate] … 4 [[app]], 5 name, 6 hostnames, 7 upstream, 8 trusted_cas,
/// 10 [[app.policy]], 11 name, 12 action, 13 include.
const BASE: &str = r#"[gate]
listen = "127.0.0.1:8080"

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"
trusted_cas = ["Corp CA"]

[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
"#;

fn all_findings(text: &str) -> Vec<Finding> {
    match parse(Path::new("policy.toml"), text) {
        Ok(c) => c.warnings,
        Err(ConfigError::Invalid { findings, .. }) => findings,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

/// The only finding with this severity; asserts there is exactly one.
fn one(text: &str, severity: Severity) -> Finding {
    let fs: Vec<Finding> = all_findings(text)
        .into_iter()
        .filter(|f| f.severity == severity)
        .collect();
    assert_eq!(fs.len(), 1, "{fs:#?}");
    fs.into_iter().next().unwrap()
}

#[track_caller]
fn assert_at(f: &Finding, line: usize, col: usize, field: &str, message_part: &str) {
    assert_eq!((f.line, f.col), (line, col), "{f}");
    assert_eq!(f.field, field, "{f}");
    assert!(f.message.contains(message_part), "{f}");
}

#[test]
fn base_is_clean() {
    let c = parse(Path::new("policy.toml"), BASE).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.file.app[0].policy[0].name.get_ref(), "CI deployment");
}

#[test]
fn missing_file_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    let e = load(&p).unwrap_err();
    assert!(matches!(e, ConfigError::NotFound { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()) && msg.contains("assets/example-policy.toml"),
        "{msg}"
    );
}

#[test]
fn unknown_action() {
    let f = one(
        &edit("\"service_auth\"", "\"sevice_auth\""),
        Severity::Error,
    );
    assert_at(
        &f,
        12,
        10,
        "app[0].policy[0].action",
        "unknown variant `sevice_auth`",
    );
    assert!(f.hint.as_deref().unwrap().contains("non_identity"));
    assert_eq!(
        f.place,
        "app \"api.example.com\", policy \"CI deployment\", action"
    );
}

#[test]
fn action_of_wrong_type() {
    let f = one(&edit("\"service_auth\"", "5"), Severity::Error);
    assert_at(&f, 12, 10, "app[0].policy[0].action", "expected a string");
}

#[test]
fn bad_cidr_in_ip_selector() {
    let text = edit(
        "{ service_token = \"ci-deploy-prod\" }]",
        "{ service_token = \"ci-deploy-prod\" }]\nrequire = [{ ip = [\"10.0.0.0/8\", \"10.0.0/8\"] }]",
    );
    let f = one(&text, Severity::Error);
    assert_at(
        &f,
        14,
        34,
        "app[0].policy[0].require[0].ip",
        "\"10.0.0/8\" is not a valid CIDR",
    );
    assert_eq!(
        f.to_string(),
        "policy.toml:14:34: error: app \"api.example.com\", policy \"CI deployment\", require[0].ip: \"10.0.0/8\" is not a valid CIDR (expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)"
    );
}

#[test]
fn host_bits_are_a_warning() {
    let text = edit("[gate]\n", "[gate]\ntrusted_proxies = [\"10.0.0.1/8\"]\n");
    let f = one(&text, Severity::Warning);
    assert_at(&f, 2, 20, "gate.trusted_proxies", "it means 10.0.0.0/8");
}

#[test]
fn bad_cidr_in_trusted_proxies() {
    let text = edit(
        "[gate]\n",
        "[gate]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]\n",
    );
    let f = one(&text, Severity::Error);
    assert_at(
        &f,
        2,
        34,
        "gate.trusted_proxies",
        "\"proxy.local\" is not a valid CIDR",
    );
}

#[test]
fn regex_that_does_not_compile() {
    let text = edit(
        "include = [{ service_token = \"ci-deploy-prod\" }]",
        "include = [{ service_token = \"ci-deploy-prod\" }, { common_name = \"^device-[a-z\" }]",
    );
    let f = one(&text, Severity::Error);
    assert_at(
        &f,
        13,
        66,
        "app[0].policy[0].include[1].common_name",
        "is not a valid regex",
    );
}

#[test]
fn country_codes() {
    let text = edit(
        "include = [{ service_token = \"ci-deploy-prod\" }]",
        "include = [{ service_token = \"ci-deploy-prod\" }]\nrequire = [{ country = [\"SG\", \"vn\"] }, { cert_country = \"SGP\" }]",
    );
    let fs: Vec<Finding> = all_findings(&text)
        .into_iter()
        .filter(Finding::is_error)
        .collect();
    assert_eq!(fs.len(), 2, "{fs:#?}");
    assert_at(
        &fs[0],
        14,
        31,
        "app[0].policy[0].require[0].country",
        "write it in uppercase, \"VN\"",
    );
    assert_at(
        &fs[1],
        14,
        57,
        "app[0].policy[0].require[1].cert_country",
        "\"SGP\" is not a country code",
    );
}

const SECOND_APP: &str = r#"
[[app]]
name = "api.example.com"
hostnames = ["other.example.com", "API.example.com"]
upstream = "http://127.0.0.1:9001"
"#;

#[test]
fn duplicate_app_name_and_hostname() {
    let text = format!("{BASE}{SECOND_APP}");
    let fs: Vec<Finding> = all_findings(&text)
        .into_iter()
        .filter(Finding::is_error)
        .collect();
    assert_eq!(fs.len(), 2, "{fs:#?}");
    assert_at(
        &fs[0],
        16,
        8,
        "app[1].name",
        "duplicate app name \"api.example.com\" (first defined at line 5)",
    );
    assert_at(
        &fs[1],
        17,
        35,
        "app[1].hostnames",
        "hostname \"API.example.com\" is already used by app \"api.example.com\" (line 6)",
    );
}

#[test]
fn app_without_hostnames() {
    let f = one(&edit("[\"api.example.com\"]", "[]"), Severity::Error);
    assert_at(&f, 6, 13, "app[0].hostnames", "no hostnames");
}

#[test]
fn https_upstream_names_an_unreadable_upstream_ca_at_its_value_beside_the_policy_file() {
    let text = edit(
        "upstream = \"http://127.0.0.1:9000\"\n",
        "upstream = \"https://127.0.0.1:9000\"\nupstream_ca = \"missing-ca.pem\"\n",
    );
    let fs = match parse(Path::new("conf/policy.toml"), &text) {
        Err(ConfigError::Invalid { findings, .. }) => findings,
        other => panic!("{other:?}"),
    };
    assert_eq!(fs.len(), 1, "{fs:#?}");
    assert_at(
        &fs[0],
        8,
        15,
        "app[0].upstream_ca",
        "upstream_ca conf/missing-ca.pem: cannot read it",
    );
}

#[test]
fn https_upstream_with_its_ca_beside_the_policy_file_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let text = edit(
        "upstream = \"http://127.0.0.1:9000\"\n",
        "upstream = \"https://127.0.0.1:9000\"\nupstream_ca = \"ca.pem\"\nupstream_server_name = \"backend.internal\"\n",
    );
    let c = parse(&dir.path().join("policy.toml"), &text).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let app = &c.file.app[0];
    assert_eq!(
        app.upstream_ca.as_ref().unwrap().get_ref(),
        &dir.path().join("ca.pem")
    );
}

#[test]
fn upstream_tls_settings_need_an_https_upstream() {
    let f = one(
        &edit(
            "trusted_cas",
            "upstream_server_name = \"backend.internal\"\ntrusted_cas",
        ),
        Severity::Error,
    );
    assert_at(
        &f,
        8,
        24,
        "app[0].upstream_server_name",
        "upstream_server_name only applies to https:// upstreams",
    );
}

#[test]
fn upstream_client_key_without_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("gate.key"), key.serialize_pem()).unwrap();
    let text = edit(
        "upstream = \"http://127.0.0.1:9000\"\n",
        "upstream = \"https://127.0.0.1:9000\"\nupstream_client_key = \"gate.key\"\n",
    );
    let fs = match parse(&dir.path().join("policy.toml"), &text) {
        Err(ConfigError::Invalid { findings, .. }) => findings,
        other => panic!("{other:?}"),
    };
    assert_eq!(fs.len(), 1, "{fs:#?}");
    assert_at(
        &fs[0],
        8,
        23,
        "app[0].upstream_client_key",
        "upstream_client_key is set but upstream_client_cert is not",
    );
}

#[test]
fn upstream_without_scheme() {
    let f = one(
        &edit("http://127.0.0.1:9000", "127.0.0.1:9000"),
        Severity::Error,
    );
    assert_at(
        &f,
        7,
        12,
        "app[0].upstream",
        "not an http:// or https:// URL",
    );
}

#[test]
fn empty_include_can_never_match() {
    let f = one(
        &edit("[{ service_token = \"ci-deploy-prod\" }]", "[]"),
        Severity::Error,
    );
    assert_at(&f, 13, 11, "app[0].policy[0].include", "can never match");
}

#[test]
fn missing_include_points_at_the_policy_name() {
    let f = one(
        &edit("include = [{ service_token = \"ci-deploy-prod\" }]\n", ""),
        Severity::Error,
    );
    assert_at(&f, 11, 8, "app[0].policy[0].name", "can never match");
}

#[test]
fn selector_with_two_keys_or_none() {
    let text = edit(
        "[{ service_token = \"ci-deploy-prod\" }]",
        "[{ service_token = \"ci-deploy-prod\", ip = \"10.0.0.0/8\" }, {}]",
    );
    let fs = all_findings(&text);
    assert_eq!(fs.len(), 2, "{fs:#?}");
    assert_at(
        &fs[0],
        13,
        12,
        "app[0].policy[0].include[0]",
        "this selector has 2 keys (ip, service_token)",
    );
    assert_at(
        &fs[1],
        13,
        69,
        "app[0].policy[0].include[1]",
        "empty selector",
    );
}

#[test]
fn unknown_selector_and_unknown_field_and_wrong_type_all_reported() {
    let text = edit(
        "action = \"service_auth\"",
        "action = \"service_auth\"\nactoin = \"x\"",
    )
    .replace(
        "{ service_token = \"ci-deploy-prod\" }",
        "{ service_tokn = \"ci-deploy-prod\" }",
    )
    .replace("upstream = \"http://127.0.0.1:9000\"", "upstream = 9000");
    let fs = all_findings(&text);
    assert_eq!(fs.len(), 3, "{fs:#?}");
    assert_at(
        &fs[0],
        7,
        12,
        "app[0].upstream",
        "invalid type: integer `9000`, expected a string",
    );
    assert_at(
        &fs[1],
        13,
        1,
        "app[0].policy[0].actoin",
        "unknown field `actoin`",
    );
    assert_at(
        &fs[2],
        14,
        14,
        "app[0].policy[0].include[0].service_tokn",
        "unknown variant `service_tokn`",
    );
}

#[test]
fn wrong_type_for_ip_list() {
    let f = one(
        &edit("[{ service_token = \"ci-deploy-prod\" }]", "[{ ip = [1] }]"),
        Severity::Error,
    );
    assert_at(
        &f,
        13,
        19,
        "app[0].policy[0].include[0].ip",
        "expected a string or a list of strings",
    );
}

#[test]
fn unknown_section() {
    let f = one(
        &format!("{BASE}\n[gaet]\nlisten = \"x\"\n"),
        Severity::Error,
    );
    assert_at(&f, 15, 2, "gaet", "unknown section `gaet`");
}

#[test]
fn bad_listen_address() {
    let f = one(
        &edit("\"127.0.0.1:8080\"", "\"localhost\""),
        Severity::Error,
    );
    assert_at(&f, 2, 10, "gate.listen", "invalid socket address");
    assert!(f.hint.unwrap().contains("127.0.0.1:8080"));
}

#[test]
fn syntax_errors_have_line_col_and_stop_there() {
    let fs = all_findings(&edit("name = \"CI deployment\"", "name = \"CI deployment"));
    assert!(!fs.is_empty());
    assert_eq!(fs[0].line, 11, "{fs:#?}");
    assert!(fs[0].message.starts_with("TOML syntax"));
}

#[test]
fn service_auth_without_token_selector_warns() {
    let f = one(
        &edit(
            "[{ service_token = \"ci-deploy-prod\" }]",
            "[{ ip = \"10.0.0.0/8\" }]",
        ),
        Severity::Warning,
    );
    assert_at(
        &f,
        12,
        10,
        "app[0].policy[0].action",
        "no service_token, any_service_token or oidc",
    );
}

#[test]
fn non_identity_with_token_selector_warns() {
    let f = one(
        &edit("\"service_auth\"", "\"non_identity\""),
        Severity::Warning,
    );
    assert_at(
        &f,
        13,
        12,
        "app[0].policy[0].include[0]",
        "service_token selector in a non_identity policy",
    );
}

#[test]
fn non_identity_without_trusted_cas_warns() {
    let text = edit("trusted_cas = [\"Corp CA\"]\n", "").replace(
        "include = [{ service_token = \"ci-deploy-prod\" }]",
        "include = [{ service_token = \"ci-deploy-prod\" }]\n\n[[app.policy]]\nname = \"devices\"\naction = \"non_identity\"\ninclude = [{ common_name = \"device-[0-9]+\\\\.corp\" }]",
    );
    let f = one(&text, Severity::Warning);
    assert_at(&f, 5, 8, "app[0].name", "trusted_cas is empty");
}

#[test]
fn many_errors_are_all_collected_in_order_errors_first() {
    let text = edit("\"service_auth\"", "\"bypass\"")
        .replace("http://127.0.0.1:9000", "http://x")
        .replace(
            "[{ service_token = \"ci-deploy-prod\" }]",
            "[{ ip = \"nope\" }, { everyone = false }]",
        );
    let e = parse(Path::new("policy.toml"), &text).unwrap_err();
    assert_eq!(e.error_count(), 2);
    let sev: Vec<Severity> = e.findings().iter().map(|f| f.severity).collect();
    assert_eq!(sev, [Severity::Error, Severity::Error, Severity::Warning]);
    let rendered = e.to_string();
    assert!(
        rendered.starts_with("policy file policy.toml has 2 errors:\npolicy.toml:7:12: error:"),
        "{rendered}"
    );
}

#[test]
fn rotation_cadence_as_array_of_tables_is_placed_too() {
    let text = format!(
        "{BASE}\n[rotation]\ncert_cadence = \"90d\"\n\n[[rotation.cadence]]\npattern = \"^payments-(\"\ntoken = \"30d\"\n"
    );
    let f = one(&text, Severity::Error);
    assert_at(
        &f,
        19,
        11,
        "rotation.cadence[0].pattern",
        "pattern \"^payments-(\" is not a valid regex",
    );
}

#[test]
fn header_limits_out_of_range_are_errors() {
    let text = edit(
        "[gate]\n",
        "[gate]\nmax_header_bytes = 4096\nmax_headers = 5000\n",
    );
    let f = all_findings(&text);
    let errors: Vec<_> = f.iter().filter(|f| f.severity == Severity::Error).collect();
    let mut errors = errors;
    errors.sort_by_key(|f| f.line);
    assert_eq!(errors.len(), 2, "{f:?}");
    assert_at(
        errors[0],
        2,
        20,
        "gate.max_header_bytes",
        "4096 is out of range (8192 to 1048576 bytes)",
    );
    assert_at(
        errors[1],
        3,
        15,
        "gate.max_headers",
        "5000 is out of range (16 to 1000 headers)",
    );
}

#[test]
fn header_limits_in_range_are_accepted() {
    let text = edit(
        "[gate]\n",
        "[gate]\nmax_header_bytes = 65536\nmax_headers = 200\n",
    );
    assert!(all_findings(&text).is_empty());
}

#[test]
fn a_node_name_must_be_a_plain_name() {
    let text = edit("[gate]\n", "[gate]\nnode = \"gate a/1\"\n");
    let f = all_findings(&text);
    let errors: Vec<_> = f.iter().filter(|f| f.severity == Severity::Error).collect();
    assert_eq!(errors.len(), 1, "{f:?}");
    assert_at(
        errors[0],
        2,
        8,
        "gate.node",
        "node \"gate a/1\" is not a node name",
    );
    let ok = edit("[gate]\n", "[gate]\nnode = \"gate-a.eu_1\"\n");
    assert!(all_findings(&ok).is_empty());
}

#[test]
fn the_default_node_is_the_host_name_as_a_node_name() {
    let name = crate::config::model::host_node_name().expect("this host has a name");
    assert!(crate::config::model::valid_node_name(&name), "{name:?}");
}

/// `[[oidc_issuer]]` after BASE: line 15 the header, 16 name, 17 issuer, 18 audiences, 19 algorithms.
fn with_issuer(algorithms: &str, audiences: &str, selector: &str) -> String {
    format!(
        "{}\n[[oidc_issuer]]\nname = \"github\"\nissuer = \"https://token.actions.githubusercontent.com\"\naudiences = {audiences}\nalgorithms = {algorithms}\n",
        edit("[{ service_token = \"ci-deploy-prod\" }]", selector)
    )
}

#[test]
fn oidc_issuer_errors_name_their_key() {
    let good = "[{ oidc = { issuer = \"github\", claims = { repository = \"example/api\" } } }]";
    let c = parse(
        Path::new("policy.toml"),
        &with_issuer("[\"RS256\"]", "[\"https://api.example.com\"]", good),
    )
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.file.oidc_issuer[0].name.get_ref(), "github");

    let f = one(
        &with_issuer("[\"HS256\"]", "[\"https://api.example.com\"]", good),
        Severity::Error,
    );
    assert_eq!(f.line, 19, "{f}");
    assert!(f.message.contains("algorithm confusion"), "{f}");
    let f = one(
        &with_issuer("[\"none\"]", "[\"https://api.example.com\"]", good),
        Severity::Error,
    );
    assert!(f.message.contains("unsigned"), "{f}");
    let f = one(&with_issuer("[\"RS256\"]", "[]", good), Severity::Error);
    assert_eq!(f.line, 18, "{f}");
    assert!(f.message.contains("audiences is empty"), "{f}");

    let unknown = "[{ oidc = { issuer = \"gitlab\", claims = { sub = \"x\" } } }]";
    let f = one(
        &with_issuer("[\"RS256\"]", "[\"https://api.example.com\"]", unknown),
        Severity::Error,
    );
    assert_eq!(f.line, 13, "{f}");
    assert!(f.message.contains("\"gitlab\""), "{f}");
    assert!(
        f.hint
            .as_deref()
            .unwrap()
            .contains("configured issuers: github"),
        "{f}"
    );

    let bad_regex = "[{ oidc = { issuer = \"github\", claims = { ref = \"^(refs$\" } } }]";
    let f = one(
        &with_issuer("[\"RS256\"]", "[\"https://api.example.com\"]", bad_regex),
        Severity::Error,
    );
    assert!(
        f.message.contains("claim ref") && f.message.contains("regex"),
        "{f}"
    );

    // An issuer-wide selector admits every job of every repository on it: a warning.
    let broad = "[{ oidc = { issuer = \"github\" } }]";
    let f = one(
        &with_issuer("[\"RS256\"]", "[\"https://api.example.com\"]", broad),
        Severity::Warning,
    );
    assert_eq!(f.line, 13, "{f}");
    assert!(f.message.contains("every workload"), "{f}");
    // Narrowed in require instead: no warning.
    let narrowed = format!(
        "{}\nrequire = [{{ oidc_claim = {{ repository = \"example/api\" }} }}]",
        broad
    );
    let text = with_issuer("[\"RS256\"]", "[\"https://api.example.com\"]", &narrowed);
    assert!(all_findings(&text).is_empty(), "{:#?}", all_findings(&text));
}
