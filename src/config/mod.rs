//! The policy file: model, load + validation with file:line:col findings, lint, and
//! format-preserving edits. Never touches the network.

pub mod model;

pub use model::{
    Action, AppConfig, AuditFailure, GateSection, OneOrMany, PolicyConfig, PolicyFile, Selector,
};
