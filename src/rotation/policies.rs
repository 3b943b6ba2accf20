//! Which policies admit a credential, judged from the credential alone: the policy's action
//! accepts this kind of credential, an include selector about credentials matches, and no
//! credential selector in require/exclude rules it out. Selectors about the request's context
//! (ip, country, everyone) are left out: they depend on where a client calls from, not on which
//! credential it holds, and a rotation must not change them.

use std::net::{IpAddr, Ipv4Addr};

use super::PolicyRef;
use crate::config::Action;
use crate::policy::{Identity, Matcher, PolicySet, Request};

/// Every `(app, policy)` that admits `identity`, in file order.
pub(crate) fn admitting(set: &PolicySet, identity: Identity<'_>) -> Vec<PolicyRef> {
    let req = Request {
        identity,
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        country: None,
    };
    let mut out = Vec::new();
    for app in &set.apps {
        for p in &app.policies {
            let kind_ok = matches!(
                (p.action, identity),
                (Action::ServiceAuth, Identity::Token { .. })
                    | (Action::NonIdentity, Identity::Cert(_))
                    | (Action::Allow, Identity::Token { .. } | Identity::Cert(_))
            );
            let admits = kind_ok
                && p.include
                    .iter()
                    .any(|m| about_credential(m) && m.matches(&req))
                && !p
                    .require
                    .iter()
                    .any(|m| about_credential(m) && !m.matches(&req))
                && !p
                    .exclude
                    .iter()
                    .any(|m| about_credential(m) && m.matches(&req));
            if admits {
                out.push(PolicyRef {
                    app: app.name.clone(),
                    policy: p.name.clone(),
                });
            }
        }
    }
    out
}

fn about_credential(m: &Matcher) -> bool {
    !matches!(m, Matcher::Ip(_) | Matcher::Country(_) | Matcher::Everyone)
}

/// `policies` as `"A" of app "x", "B" of app "y"`.
pub(crate) fn describe(policies: &[PolicyRef]) -> String {
    policies
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CertIdentity;

    const POLICY: &str = r#"
[[app]]
name = "api"
hostnames = ["api.test"]
upstream = "http://127.0.0.1:1"

[[app.policy]]
name = "health"
action = "bypass"
include = [{ everyone = true }]

[[app.policy]]
name = "CI"
action = "service_auth"
include = [{ service_token = "ci-deploy-prod" }]
require = [{ ip = "10.0.0.0/8" }]

[[app.policy]]
name = "any token but old"
action = "service_auth"
include = [{ any_service_token = true }]
exclude = [{ service_token = "ci-deploy-prod" }]

[[app.policy]]
name = "devices"
action = "non_identity"
include = [{ common_name = "^device-[a-z0-9]+$" }]
require = [{ issuer = "^botgate Issuing CA$" }]
"#;

    fn set() -> PolicySet {
        let file: crate::config::PolicyFile = toml::from_str(POLICY).unwrap();
        crate::policy::compile(&file).unwrap()
    }

    fn names(v: Vec<PolicyRef>) -> Vec<String> {
        v.into_iter().map(|p| p.policy).collect()
    }

    #[test]
    fn tokens_by_name_ignoring_where_they_call_from() {
        let s = set();
        assert_eq!(
            names(admitting(
                &s,
                Identity::Token {
                    name: "ci-deploy-prod"
                }
            )),
            ["CI"]
        );
        assert_eq!(
            names(admitting(
                &s,
                Identity::Token {
                    name: "ci-deploy-prod-v2"
                }
            )),
            ["any token but old"]
        );
    }

    #[test]
    fn certificates_by_cn_and_issuer() {
        let s = set();
        let mut cert = CertIdentity {
            common_name: Some("device-a1".into()),
            issuer: "botgate Issuing CA".into(),
            ..Default::default()
        };
        assert_eq!(names(admitting(&s, Identity::Cert(&cert))), ["devices"]);
        cert.issuer = "Other CA".into();
        assert!(admitting(&s, Identity::Cert(&cert)).is_empty());
    }
}
