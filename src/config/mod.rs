//! The policy file: model, load + validation with file:line:col findings, lint, and
//! format-preserving edits. Never touches the network.

pub mod cert_selectors;
mod diff;
mod doc;
pub mod edit;
pub mod finding;
pub mod lint;
pub mod load;
pub mod model;
mod validate;
pub mod values;
pub mod watch;

pub use finding::{ConfigError, Finding, Severity};
pub use lint::{LintContext, lint};
pub use load::{LoadedConfig, load, parse};
pub use model::{
    Action, AppConfig, AuditDurability, AuditFailure, GateSection, NameMatch, OneOrMany,
    PolicyConfig, PolicyFile, Selector, StoreSection, TokensSection, resolve_store_url,
};
