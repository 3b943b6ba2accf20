//! Copying out of the console: what `y` (the selected row's key field) and `Y` (a menu: the row
//! as JSON, a `curl` that reproduces the request, the `botgate policy explain` line) copy, and
//! the OSC 52 escape sequence that puts text on the clipboard of the terminal the console is
//! drawn in. OSC 52 travels with the output, so it works over ssh; inside tmux, tmux takes it
//! into a paste buffer (and on to the outer terminal) when `set-clipboard` is `on`. Pure: the
//! runner writes the sequence (`app::Effect::Copy`). Secrets are never copied: the `curl` leaves
//! the secret as `$CF_ACCESS_CLIENT_SECRET`.

use crate::audit::{AccessEvent, ConnectionMethod, EventKind};
use crate::pki::inspect::base64;

use super::app::{AppState, ViewId};
use super::compact::EventFields;
use super::{export, rows};

/// One thing that can be copied: what it is (said in the footer) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copyable {
    pub what: String,
    pub text: String,
}

impl Copyable {
    fn new(what: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            text: text.into(),
        }
    }
}

/// The OSC 52 sequence that sets the system clipboard (`c`) to `text`.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// What `y` copies: the selected row's key field (identity, client id, fingerprint, alert id,
/// policy, rotation id, ray id).
pub fn key_field(s: &AppState) -> Option<Copyable> {
    let sel = s.selected[s.view.index()];
    match s.view {
        ViewId::Traffic => {
            let i = *rows::identities(s).get(sel)?;
            Some(Copyable::new("identity", i.name.as_str()))
        }
        ViewId::Tokens => {
            let t = *rows::tokens(s).get(sel)?;
            Some(Copyable::new("client id", t.client_id.as_str()))
        }
        ViewId::Certs => {
            let c = *rows::certs(s).get(sel)?;
            Some(Copyable::new(
                "SHA-256 fingerprint",
                c.fingerprint_sha256.as_str(),
            ))
        }
        ViewId::Alerts => {
            let a = *rows::alerts(s).get(sel)?;
            Some(Copyable::new("alert id", a.id.as_str()))
        }
        ViewId::Policies => {
            let l = *rows::policy_lines(s).get(sel)?;
            Some(match l.policy {
                Some(p) => Copyable::new("policy", format!("{} / {}", l.app.name, p.name)),
                None => Copyable::new("app", l.app.name.as_str()),
            })
        }
        ViewId::Rotations => {
            let r = s.rotations.get(sel)?;
            Some(Copyable::new("rotation id", r.view.id.as_str()))
        }
        ViewId::Log => {
            let e = rows::log_event(s, sel)?;
            Some(Copyable::new("ray id", e.ray_id()))
        }
        ViewId::Issuers => {
            let r = s.issuers.get(sel)?;
            Some(Copyable::new("issuer URL", r.view.issuer.as_str()))
        }
    }
}

/// What `Y` offers for the selected row, in menu order: the row as JSON (as `:export` writes
/// it), then for a request or a credential a `curl` and the `policy explain` line, built from
/// the event (Log) or the credential's newest event still in the ring.
pub fn menu(s: &AppState) -> Vec<Copyable> {
    let sel = s.selected[s.view.index()];
    let table = export::table(s, s.view);
    if sel >= table.rows.len() {
        return Vec::new();
    }
    let mut items = vec![Copyable::new("row as JSON", table.json_row(sel))];
    let request = match s.view {
        ViewId::Log => rows::log_event(s, sel)
            .filter(|e| e.kind() == EventKind::Access)
            .and_then(|e| Request::of_event(s, &e.to_event())),
        ViewId::Traffic => rows::identities(s)
            .get(sel)
            .and_then(|i| newest_event_of(s, &i.name))
            .and_then(|e| Request::of_event(s, &e)),
        ViewId::Tokens => rows::tokens(s).get(sel).and_then(|t| {
            newest_event_of(s, &t.name)
                .and_then(|e| Request::of_event(s, &e))
                .or_else(|| Request::of_token(s, &t.name, &t.client_id))
        }),
        ViewId::Certs => rows::certs(s)
            .get(sel)
            .and_then(|c| newest_event_of(s, &c.common_name))
            .and_then(|e| Request::of_event(s, &e)),
        ViewId::Alerts | ViewId::Policies | ViewId::Rotations | ViewId::Issuers => None,
    };
    if let Some(r) = request {
        items.push(Copyable::new("curl that reproduces the request", r.curl(s)));
        if let Some(line) = r.explain() {
            items.push(Copyable::new("botgate policy explain line", line));
        }
    }
    items
}

/// The newest access event of `identity` in the ring the views show.
fn newest_event_of(s: &AppState, identity: &str) -> Option<AccessEvent> {
    let ring = &s.shown_traffic().ring;
    (0..ring.len())
        .filter_map(|i| ring.newest(i))
        .find(|e| e.kind() == EventKind::Access && e.identity() == Some(identity))
        .map(|e| e.to_event())
}

/// A request to reproduce: who, where, what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    host: String,
    method: String,
    path: String,
    ip: Option<String>,
    credential: Credential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    Token {
        name: String,
        client_id: String,
    },
    Cert {
        common_name: String,
    },
    /// An OIDC workload: its token is never in the event, so the copy names a variable.
    Workload,
    None,
}

impl Request {
    fn of_event(s: &AppState, e: &AccessEvent) -> Option<Self> {
        let host = e.host.clone().or_else(|| {
            let app = e.app_name.as_deref()?;
            s.apps
                .iter()
                .find(|a| a.name == app)
                .and_then(|a| a.hostnames.first().cloned())
                .or_else(|| Some(app.to_string()))
        })?;
        let credential = match e.connection_method {
            ConnectionMethod::ServiceToken => {
                let name = e.service_token_name.clone().unwrap_or_default();
                let client_id = e
                    .service_token_id
                    .clone()
                    .or_else(|| {
                        s.tokens
                            .iter()
                            .find(|t| t.name == name)
                            .map(|t| t.client_id.clone())
                    })
                    .unwrap_or_else(|| "$CF_ACCESS_CLIENT_ID".into());
                Credential::Token { name, client_id }
            }
            ConnectionMethod::Mtls => Credential::Cert {
                common_name: e
                    .cert_common_name
                    .clone()
                    .unwrap_or_else(|| "client".into()),
            },
            ConnectionMethod::Oidc => Credential::Workload,
            ConnectionMethod::None => Credential::None,
        };
        Some(Self {
            host,
            method: e.method.clone().unwrap_or_else(|| "GET".into()),
            path: e.path.clone().unwrap_or_else(|| "/".into()),
            ip: e.ip_address.clone(),
            credential,
        })
    }

    /// A token never seen in the ring: the first app a policy admits it to, path `/`.
    fn of_token(s: &AppState, name: &str, client_id: &str) -> Option<Self> {
        let token = s.tokens.iter().find(|t| t.name == name)?;
        let app_name = token.policies.first()?.split(" / ").next()?;
        let app = s.apps.iter().find(|a| a.name == app_name);
        let host = app
            .and_then(|a| a.hostnames.first().cloned())
            .unwrap_or_else(|| app_name.to_string());
        Some(Self {
            host,
            method: "GET".into(),
            path: "/".into(),
            ip: None,
            credential: Credential::Token {
                name: name.into(),
                client_id: client_id.into(),
            },
        })
    }

    /// `curl …` against the gate's listener (or the host itself when the console does not know
    /// the listeners); the secret stays a shell variable.
    fn curl(&self, s: &AppState) -> String {
        let listener = |scheme: &str| {
            s.header
                .listen
                .iter()
                .find_map(|l| l.strip_prefix(scheme))
                .map(str::to_string)
        };
        let mut parts = vec!["curl -sS".to_string()];
        if self.method != "GET" {
            parts.push(format!("-X {}", sh_quote(&self.method)));
        }
        let url = match &self.credential {
            Credential::Cert { common_name } => {
                parts.push(format!(
                    "--cert {} --key {}",
                    sh_quote(&format!("{common_name}.pem")),
                    sh_quote(&format!("{common_name}.key"))
                ));
                match listener("https://").and_then(|a| a.rsplit_once(':').map(split_owned)) {
                    Some((ip, port)) => {
                        // Resolve the app's name to the gate, so SNI and Host both name the app.
                        parts.push(format!(
                            "--resolve {}",
                            sh_quote(&format!("{}:{port}:{ip}", self.host))
                        ));
                        format!("https://{}:{port}{}", self.host, self.path)
                    }
                    None => format!("https://{}{}", self.host, self.path),
                }
            }
            Credential::Token { .. } | Credential::Workload | Credential::None => {
                match listener("http://") {
                    Some(addr) => {
                        parts.push(format!("-H {}", sh_quote(&format!("Host: {}", self.host))));
                        format!("http://{addr}{}", self.path)
                    }
                    None => format!("http://{}{}", self.host, self.path),
                }
            }
        };
        if let Credential::Token { client_id, .. } = &self.credential {
            parts.push(format!(
                "-H {}",
                sh_quote(&format!("CF-Access-Client-Id: {client_id}"))
            ));
            parts.push("-H \"CF-Access-Client-Secret: $CF_ACCESS_CLIENT_SECRET\"".into());
        }
        if let Credential::Workload = &self.credential {
            parts.push("-H \"Authorization: Bearer $OIDC_TOKEN\"".into());
        }
        parts.push(sh_quote(&url));
        parts.join(" ")
    }

    /// `botgate policy explain --app HOST (--token NAME | --cert CN.pem) [--ip IP]`; none for
    /// a request without a credential (explain needs one).
    fn explain(&self) -> Option<String> {
        let mut line = format!("botgate policy explain --app {}", sh_quote(&self.host));
        match &self.credential {
            Credential::Token { name, .. } => {
                line.push_str(&format!(" --token {}", sh_quote(name)));
            }
            Credential::Cert { common_name } => {
                line.push_str(&format!(
                    " --cert {}",
                    sh_quote(&format!("{common_name}.pem"))
                ));
            }
            Credential::Workload => line.push_str(" --jwt token.jwt"),
            Credential::None => return None,
        }
        if let Some(ip) = &self.ip {
            line.push_str(&format!(" --ip {}", sh_quote(ip)));
        }
        Some(line)
    }
}

fn split_owned((a, b): (&str, &str)) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// `text` as one shell word: bare when it is only safe characters, else single-quoted.
fn sh_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_carries_the_text_in_base64() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        assert_eq!(osc52(""), "\x1b]52;c;\x07");
    }

    #[test]
    fn shell_quoting_keeps_one_word() {
        assert_eq!(sh_quote("api.example.com"), "api.example.com");
        assert_eq!(sh_quote("Host: a"), "'Host: a'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
