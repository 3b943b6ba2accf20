//! Edits keep comments and layout, are idempotent, show a diff and write atomically.

use super::select::escape_cn;
use super::*;

const COMMENTED: &str = r#"# botgate policy for the API
[gate]
listen = "127.0.0.1:8080"  # plain HTTP

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

# CI deploys with its own tokens.
[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { service_token = "ci-deploy-staging" }]

[[app.policy]]
name = "Multi"
action = "service_auth"
include = [
  # the prod deployer
  { service_token = "ci-deploy-prod" }, # rotated 2026-01
  { service_token = "ops-backup-prod" },
]

[[app.policy]]
name = "Last without comma"
action = "service_auth"
include = [
  { service_token = "ops-backup-prod" },
  { service_token = "ci-deploy-prod" } # last one
]

[[app.policy]]
name = "Tables"
action = "service_auth"

# as a table
[[app.policy.include]]
service_token = "ci-deploy-prod"

[[app.policy]]
name = "Everyone else"
action = "block"
include = [{ everyone = true }]
"#;

const ADDED: &str = r#"# botgate policy for the API
[gate]
listen = "127.0.0.1:8080"  # plain HTTP

[[app]]
name = "api.example.com"
hostnames = ["api.example.com"]
upstream = "http://127.0.0.1:9000"

# CI deploys with its own tokens.
[[app.policy]]
name = "CI deployment"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }, { service_token = "ci-deploy-prod-v2" }, { service_token = "ci-deploy-staging" }]

[[app.policy]]
name = "Multi"
action = "service_auth"
include = [
  # the prod deployer
  { service_token = "ci-deploy-prod" }, # rotated 2026-01
  { service_token = "ci-deploy-prod-v2" },
  { service_token = "ops-backup-prod" },
]

[[app.policy]]
name = "Last without comma"
action = "service_auth"
include = [
  { service_token = "ops-backup-prod" },
  { service_token = "ci-deploy-prod" }, # last one
  { service_token = "ci-deploy-prod-v2" }
]

[[app.policy]]
name = "Tables"
action = "service_auth"

# as a table
[[app.policy.include]]
service_token = "ci-deploy-prod"

[[app.policy.include]]
service_token = "ci-deploy-prod-v2"

[[app.policy]]
name = "Everyone else"
action = "block"
include = [{ everyone = true }]
"#;

fn policies(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|p| ("api.example.com".to_string(), p.to_string()))
        .collect()
}

#[test]
fn add_keeps_comments_and_layout() {
    let e = plan_add_token(COMMENTED, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    assert_eq!(e.new_text, ADDED);
    assert_eq!(
        e.changed_policies,
        policies(&["CI deployment", "Multi", "Last without comma", "Tables"])
    );
    assert!(e.notes.is_empty());
    assert_eq!(e.old_text, COMMENTED);
}

#[test]
fn add_is_idempotent() {
    let once = plan_add_token(COMMENTED, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    let twice = plan_add_token(&once.new_text, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    assert!(twice.is_noop());
    assert_eq!(twice.new_text, ADDED);
    assert!(twice.changed_policies.is_empty());
    assert_eq!(twice.diff, "");
}

#[test]
fn add_shows_a_unified_diff() {
    let e = plan_add_token(COMMENTED, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    assert!(
        e.diff
            .starts_with("--- policy.toml\n+++ policy.toml (edited)\n@@ -12,5 +12,5 @@\n"),
        "{}",
        e.diff
    );
    assert!(e.diff.contains(
        "-include = [{ service_token = \"ci-deploy-prod\" }, { service_token = \"ci-deploy-staging\" }]\n+include = [{ service_token = \"ci-deploy-prod\" }, { service_token = \"ci-deploy-prod-v2\" }, { service_token = \"ci-deploy-staging\" }]\n"
    ));
    assert!(e.diff.contains("   { service_token = \"ci-deploy-prod\" }, # rotated 2026-01\n+  { service_token = \"ci-deploy-prod-v2\" },\n"));
    let added = e
        .diff
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .count();
    let removed = e
        .diff
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .count();
    assert_eq!((added, removed), (7, 2), "{}", e.diff);
}

#[test]
fn add_for_an_unreferenced_token_changes_nothing() {
    let e = plan_add_token(COMMENTED, "nobody-uses-this", "nobody-uses-this-v2").unwrap();
    assert!(e.is_noop());
    assert!(e.changed_policies.is_empty());
}

#[test]
fn add_refuses_bad_names_and_invalid_files() {
    assert!(matches!(
        plan_add_token(COMMENTED, "ci-deploy-prod", "bad name"),
        Err(EditError::BadName(_))
    ));
    let broken = COMMENTED.replace("\"block\"", "\"blokc\"");
    assert!(matches!(
        plan_add_token(&broken, "ci-deploy-prod", "ci-deploy-prod-v2"),
        Err(EditError::InvalidBefore(_))
    ));
}

#[test]
fn tokens_in_require_or_exclude_are_noted_not_edited() {
    let text = COMMENTED.replace(
        "include = [{ everyone = true }]",
        "include = [{ everyone = true }]\nexclude = [{ service_token = \"ci-deploy-prod\" }]",
    );
    let e = plan_add_token(&text, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    assert_eq!(
        e.notes,
        [
            "app \"api.example.com\", policy \"Everyone else\": exclude names token \"ci-deploy-prod\"; review it by hand"
        ]
    );
    assert!(
        e.new_text
            .ends_with("exclude = [{ service_token = \"ci-deploy-prod\" }]\n")
    );
}

#[test]
fn remove_after_add_keeps_the_rest_and_is_idempotent() {
    let r = plan_remove_token(ADDED, "ci-deploy-prod").unwrap();
    assert_eq!(
        r.changed_policies,
        policies(&["CI deployment", "Multi", "Last without comma", "Tables"])
    );
    let t = &r.new_text;
    assert!(!t.contains("\"ci-deploy-prod\""), "{t}");
    assert!(t.contains("include = [{ service_token = \"ci-deploy-prod-v2\" }, { service_token = \"ci-deploy-staging\" }]\n"), "{t}");
    assert!(t.contains("include = [\n  { service_token = \"ci-deploy-prod-v2\" },\n  { service_token = \"ops-backup-prod\" },\n]\n"), "{t}");
    assert!(t.contains("include = [\n  { service_token = \"ops-backup-prod\" },\n  { service_token = \"ci-deploy-prod-v2\" }\n]\n"), "{t}");
    // Comments not about the removed token stay.
    assert!(
        t.starts_with("# botgate policy for the API\n")
            && t.contains("listen = \"127.0.0.1:8080\"  # plain HTTP\n")
            && t.contains("# CI deploys with its own tokens.\n")
    );
    let again = plan_remove_token(t, "ci-deploy-prod").unwrap();
    assert!(again.is_noop());
}

#[test]
fn remove_first_of_a_single_line_list() {
    let r = plan_remove_token(COMMENTED, "ci-deploy-staging").unwrap();
    assert!(
        r.new_text
            .contains("include = [{ service_token = \"ci-deploy-prod\" }]\n"),
        "{}",
        r.new_text
    );
}

#[test]
fn remove_refuses_to_empty_an_include() {
    match plan_remove_token(COMMENTED, "ci-deploy-prod") {
        Err(EditError::WouldEmptyInclude { app, policy, token }) => {
            assert_eq!(
                (app.as_str(), policy.as_str(), token.as_str()),
                ("api.example.com", "Tables", "ci-deploy-prod")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn apply_backs_up_and_replaces_keeping_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, COMMENTED).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let e = plan_add_token(COMMENTED, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    let backup = apply(&path, &e).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ADDED);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), COMMENTED);
    assert_eq!(backup.parent(), Some(dir.path()));
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("policy.toml.bak.")
    );
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o640);
    // No temp files left behind: the file and its backup only.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    // The same plan again: the file changed since.
    assert!(matches!(apply(&path, &e), Err(EditError::Changed { .. })));
    let noop = plan_add_token(ADDED, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    assert!(matches!(apply(&path, &noop), Err(EditError::Noop)));
}

#[cfg(unix)]
#[test]
fn apply_through_a_symlink_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    let link = dir.path().join("policy.toml");
    std::fs::write(&real, COMMENTED).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = plan_add_token(COMMENTED, "ci-deploy-prod", "ci-deploy-prod-v2").unwrap();
    apply(&link, &e).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), ADDED);
}

const CNS: &str = r#"[[app]]
name = "devices"
hostnames = ["devices.test"]
upstream = "http://127.0.0.1:9000"

# One device by name, one family by pattern.
[[app.policy]]
name = "Gateway"
action = "non_identity"
include = [
  { common_name = "gw-1.factory.corp" }, # the old gateway
]

[[app.policy]]
name = "Devices"
action = "non_identity"
include = [{ common_name = "^device-[a-z0-9]+$" }, { common_name = '^gw-1\.factory\.corp$' }]

[[app.policy]]
name = "Tables"
action = "non_identity"

[[app.policy.include]]
common_name = "gw-1.factory.corp"
"#;

#[test]
fn exact_cn_selectors_are_told_from_patterns() {
    assert!(names_cn_exactly("gw-1", "gw-1"));
    assert!(names_cn_exactly("^gw-1$", "gw-1"));
    assert!(names_cn_exactly(r"gw-1\.corp", "gw-1.corp"));
    assert!(names_cn_exactly("gw-1.corp", "gw-1.corp"));
    assert!(!names_cn_exactly("gw-1.corp", "gw-1xcorp"));
    assert!(!names_cn_exactly("gw-[0-9]", "gw-1"));
    assert!(!names_cn_exactly("gw-.*", "gw-1"));
    assert!(!names_cn_exactly("gw-1|gw-2", "gw-1"));
    assert!(!names_cn_exactly(r"gw-\d", "gw-1"));
    for cn in ["a+b (x)#1.corp", "gw-1", r"back\slash$"] {
        let escaped = escape_cn(cn);
        assert!(names_cn_exactly(&escaped, cn), "{escaped}");
        let re = regex::Regex::new(&format!("^(?:{escaped})$")).unwrap();
        assert!(
            re.is_match(cn) && !re.is_match(&format!("{cn}x")),
            "{escaped}"
        );
    }
}

#[test]
fn add_cn_beside_every_exact_selector_keeping_comments() {
    let edit = plan_add_common_name(CNS, "gw-1.factory.corp", "gw-2.factory.corp").unwrap();
    assert_eq!(
        edit.changed_policies,
        policies(&["Gateway", "Devices", "Tables"])
            .into_iter()
            .map(|(_, p)| ("devices".to_string(), p))
            .collect::<Vec<_>>()
    );
    let text = &edit.new_text;
    assert!(text.contains("# One device by name, one family by pattern."));
    assert!(text.contains("{ common_name = \"gw-1.factory.corp\" }, # the old gateway"));
    // The new CN is escaped: it admits exactly that CN, not gw-2Xfactory…
    assert_eq!(text.matches(r"gw-2\.factory\.corp").count(), 3, "{text}");
    assert!(
        text.contains("^device-[a-z0-9]+$"),
        "the regex is left alone"
    );
    let file = crate::config::parse(Path::new("p.toml"), text)
        .unwrap()
        .file;
    let set = crate::policy::compile(&file).unwrap();
    assert!(!set.apps[0].policies.is_empty());
    // Idempotent.
    let again = plan_add_common_name(text, "gw-1.factory.corp", "gw-2.factory.corp").unwrap();
    assert!(again.is_noop());
}

#[test]
fn remove_cn_removes_only_exact_selectors() {
    let added = plan_add_common_name(CNS, "gw-1.factory.corp", "gw-2.factory.corp").unwrap();
    let removed = plan_remove_common_name(&added.new_text, "gw-1.factory.corp").unwrap();
    let text = &removed.new_text;
    assert!(!text.contains("gw-1"), "{text}");
    assert!(text.contains("^device-[a-z0-9]+$"));
    assert_eq!(text.matches(r"gw-2\.factory\.corp").count(), 3);
    // Removing the only CN would leave an include empty: refused.
    let err = plan_remove_common_name(CNS, "gw-1.factory.corp").unwrap_err();
    assert!(
        matches!(err, EditError::WouldEmptyInclude { ref policy, .. } if policy == "Gateway"),
        "{err}"
    );
}

#[test]
fn add_cn_refuses_an_unusable_cn() {
    assert!(matches!(
        plan_add_common_name(CNS, "gw-1.factory.corp", " "),
        Err(EditError::BadName(_))
    ));
}

/// Regression: abort after add (remove what add inserted) must give back the original text,
/// including the comment after the old element's comma, which add moved into the new
/// element's prefix.
#[test]
fn remove_after_add_restores_the_original_text() {
    for (text, old, new) in [
        (COMMENTED, "ci-deploy-prod", "ci-deploy-prod-v2"),
        (COMMENTED, "ops-backup-prod", "ops-backup-prod-v2"),
    ] {
        let added = plan_add_token(text, old, new).unwrap();
        let removed = plan_remove_token(&added.new_text, new).unwrap();
        assert_eq!(removed.new_text, text, "add {new} then remove it");
    }
    let added = plan_add_common_name(CNS, "gw-1.factory.corp", "gw-2.factory.corp").unwrap();
    let removed = plan_remove_common_name(&added.new_text, "gw-2.factory.corp").unwrap();
    assert_eq!(removed.new_text, CNS);
}
