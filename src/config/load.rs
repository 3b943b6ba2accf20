//! Loading the policy file: read, parse with spans, deserialize into the model, validate.
//!
//! Every problem is collected, not just the first: syntax errors come from the recoverable
//! parser; when the whole file does not deserialize, each section, app, policy and selector is
//! deserialized on its own so each bad piece gets its own finding, and the pieces that are fine
//! are still validated.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::doc::Doc;
use super::finding::{ConfigError, Finding, Severity, sort_findings};
use super::model::{AppConfig, PolicyConfig, PolicyFile, Selector};
use super::validate;

/// A policy file that passed validation (it may still have warnings).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The path it was read from (as given).
    pub path: PathBuf,
    /// The exact text, for edits and for locating lint findings.
    pub text: String,
    pub file: PolicyFile,
    /// Validation warnings (file order).
    pub warnings: Vec<Finding>,
}

/// Read and validate the policy file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = match crate::input::read_to_string(path, crate::input::POLICY_FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(path, &text)
}

/// Validate policy text; `path_for_messages` names the file in findings, and relative file paths
/// of `[[app]]`s (`upstream_ca`, `upstream_client_cert`, `upstream_client_key`) are beside it.
pub fn parse(path_for_messages: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
    let (doc, mut findings) = Doc::parse(path_for_messages, text);
    if !findings.is_empty() {
        // After a syntax error the tree is a guess; do not pile semantic errors on top.
        return Err(ConfigError::Invalid {
            path: path_for_messages.to_path_buf(),
            findings,
        });
    }
    let file = match serde::Deserialize::deserialize(toml::de::Deserializer::from(doc.root.clone()))
    {
        Ok(file) => file,
        Err(whole) => {
            let (partial, errors) = deserialize_each(&doc);
            if errors.is_empty() {
                findings.push(serde_finding(
                    &doc,
                    &whole,
                    whole.span().unwrap_or(doc.root.span()),
                ));
            }
            findings.extend(errors);
            partial
        }
    };
    let file = resolve_app_paths(file, path_for_messages.parent().unwrap_or(Path::new("")));
    findings.extend(validate::validate(&file, &doc));
    sort_findings(&mut findings);
    if findings.iter().any(Finding::is_error) {
        return Err(ConfigError::Invalid {
            path: path_for_messages.to_path_buf(),
            findings,
        });
    }
    Ok(LoadedConfig {
        path: path_for_messages.to_path_buf(),
        text: text.to_string(),
        file,
        warnings: findings,
    })
}

/// Make the apps' relative TLS file paths relative to `base` (the policy file's directory), so
/// validation, the gate and a reload read the same files wherever botgate was started.
fn resolve_app_paths(mut file: PolicyFile, base: &Path) -> PolicyFile {
    for app in &mut file.app {
        let paths = [
            &mut app.upstream_ca,
            &mut app.upstream_client_cert,
            &mut app.upstream_client_key,
        ];
        for p in paths.into_iter().flatten() {
            if p.get_ref().is_relative() {
                *p = Spanned::new(p.span(), base.join(p.get_ref()));
            }
        }
    }
    file
}

/// Top-level sections, in the order the reference documents them.
const SECTIONS: &[&str] = &[
    "gate",
    "app",
    "inventory",
    "geo",
    "rotation",
    "detect",
    "sink",
];
const ACTIONS_HINT: &str = "actions: service_auth (service tokens), non_identity (client certificates), allow, block, bypass";

/// Deserialize piece by piece, collecting one finding per bad piece.
fn deserialize_each(doc: &Doc<'_>) -> (PolicyFile, Vec<Finding>) {
    let mut file = PolicyFile::default();
    let mut errors = Vec::new();
    for (key, value) in doc.root.get_ref().iter() {
        let errs = &mut errors;
        match key.get_ref().as_ref() {
            "gate" => file.gate = take(doc, value.clone(), errs).unwrap_or_default(),
            "inventory" => file.inventory = take(doc, value.clone(), errs).unwrap_or_default(),
            "geo" => file.geo = take(doc, value.clone(), errs).unwrap_or_default(),
            "rotation" => file.rotation = take(doc, value.clone(), errs).unwrap_or_default(),
            "detect" => file.detect = take(doc, value.clone(), errs).unwrap_or_default(),
            "sink" => file.sink = take(doc, value.clone(), errs).unwrap_or_default(),
            "app" => file.app = apps(doc, value, errs),
            other => errs.push(doc.finding(
                Severity::Error,
                key.span(),
                format!("unknown section `{other}`"),
                Some(format!("top-level sections are: {}", SECTIONS.join(", "))),
            )),
        }
    }
    (file, errors)
}

fn apps(doc: &Doc<'_>, value: &Spanned<DeValue<'_>>, errors: &mut Vec<Finding>) -> Vec<AppConfig> {
    let Some(items) = value.get_ref().as_array() else {
        errors.push(doc.finding(
            Severity::Error,
            value.span(),
            "`app` must be a list of tables",
            Some("write each application as an [[app]] section".into()),
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Some(table) = item.get_ref().as_table() else {
            errors.push(doc.finding(
                Severity::Error,
                item.span(),
                "each app must be a table",
                Some("write it as an [[app]] section".into()),
            ));
            continue;
        };
        let app: Option<AppConfig> = take(doc, without(item, table, &["policy"]), errors);
        let policies = table
            .get("policy")
            .map_or_else(Vec::new, |p| policies(doc, p, errors));
        if let Some(mut app) = app {
            app.policy = policies;
            out.push(app);
        }
    }
    out
}

fn policies(
    doc: &Doc<'_>,
    value: &Spanned<DeValue<'_>>,
    errors: &mut Vec<Finding>,
) -> Vec<PolicyConfig> {
    let Some(items) = value.get_ref().as_array() else {
        errors.push(doc.finding(
            Severity::Error,
            value.span(),
            "`policy` must be a list of tables",
            Some("write each policy as an [[app.policy]] section".into()),
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Some(table) = item.get_ref().as_table() else {
            errors.push(doc.finding(
                Severity::Error,
                item.span(),
                "each policy must be a table",
                Some("write it as an [[app.policy]] section".into()),
            ));
            continue;
        };
        let policy: Option<PolicyConfig> = take(
            doc,
            without(item, table, &["include", "require", "exclude"]),
            errors,
        );
        let lists = ["include", "require", "exclude"].map(|k| {
            table
                .get(k)
                .map_or(Some(Vec::new()), |v| selectors(doc, k, v, errors))
        });
        if let (Some(mut p), [Some(include), Some(require), Some(exclude)]) = (policy, lists) {
            (p.include, p.require, p.exclude) = (include, require, exclude);
            out.push(p);
        }
    }
    out
}

/// A selector list; `None` when any selector in it is bad (its findings are pushed).
fn selectors(
    doc: &Doc<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    errors: &mut Vec<Finding>,
) -> Option<Vec<Spanned<Selector>>> {
    let Some(items) = value.get_ref().as_array() else {
        errors.push(doc.finding(
            Severity::Error,
            value.span(),
            format!("`{key}` must be a list of selectors"),
            Some(format!(
                "e.g. {key} = [{{ service_token = \"ci-deploy-prod\" }}, {{ ip = \"10.0.0.0/8\" }}]"
            )),
        ));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items.iter() {
        let keys: Vec<&str> = item
            .get_ref()
            .as_table()
            .map(|t| t.iter().map(|(k, _)| k.get_ref().as_ref()).collect())
            .unwrap_or_default();
        let shape = match (item.get_ref().is_table(), keys.len()) {
            (false, _) => Some((
                format!(
                    "a selector must be a table with one key, not a {}",
                    item.get_ref().type_str()
                ),
                "e.g. { everyone = true }".to_string(),
            )),
            (true, 0) => Some((
                "empty selector `{}`: a selector has exactly one key".to_string(),
                "e.g. { service_token = \"ci-deploy-prod\" } or { everyone = true }".to_string(),
            )),
            (true, 1) => None,
            (true, n) => Some((
                format!(
                    "this selector has {n} keys ({}); a selector has exactly one key",
                    keys.join(", ")
                ),
                format!(
                    "split it into {n} selectors: in include any one may match, in require all must match"
                ),
            )),
        };
        if let Some((message, hint)) = shape {
            errors.push(doc.finding(Severity::Error, item.span(), message, Some(hint)));
            ok = false;
            continue;
        }
        match Spanned::<Selector>::deserialize(ValueDeserializer::from(item.clone())) {
            Ok(s) => out.push(s),
            Err(e) => {
                // Untagged values (a string or a list) lose their span: point at the value.
                let value_span = item
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.iter().next())
                    .map(|(_, v)| v.span());
                let span = match (e.span(), value_span) {
                    (Some(s), Some(v)) if s == item.span() => v,
                    (s, _) => s.unwrap_or(item.span()),
                };
                errors.push(serde_finding(doc, &e, span));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `table` minus `keys`, spanned like `item`.
fn without<'i>(
    item: &Spanned<DeValue<'i>>,
    table: &DeTable<'i>,
    keys: &[&str],
) -> Spanned<DeValue<'i>> {
    let rest: DeTable<'i> = table
        .iter()
        .filter(|(k, _)| !keys.contains(&k.get_ref().as_ref()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Spanned::new(item.span(), DeValue::Table(rest))
}

/// Deserialize one piece; on failure push a finding and return `None`.
fn take<T: DeserializeOwned>(
    doc: &Doc<'_>,
    value: Spanned<DeValue<'_>>,
    errors: &mut Vec<Finding>,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(serde_finding(doc, &e, e.span().unwrap_or(span)));
            None
        }
    }
}

/// A serde error at `span` as a finding, with friendlier words for the messages serde gets wrong.
fn serde_finding(doc: &Doc<'_>, err: &toml::de::Error, span: std::ops::Range<usize>) -> Finding {
    let mut f = doc.finding(Severity::Error, span, err.message().to_string(), None);
    let is_action = f.field.ends_with("action");
    let raw = err.message();
    if raw.contains("untagged enum OneOrMany") {
        f.message = "expected a string or a list of strings".into();
    } else if raw == "wanted string or table" {
        f.message = "expected a string".into();
    } else if raw.contains("invalid socket address") {
        f.hint = Some("expected IP:PORT, e.g. 127.0.0.1:8080".into());
    }
    if is_action {
        f.hint = Some(ACTIONS_HINT.into());
    }
    f
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
