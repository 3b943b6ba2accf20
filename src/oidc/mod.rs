//! OIDC workload identity: CI and Kubernetes jobs present short-lived JWTs their platform
//! signed, and botgate trusts the issuer (`[[oidc_issuer]]`) instead of a stored secret.
//! `settings` parses the issuers, `jwks` their key sets, `token` verifies one token, `fetch`
//! gets key sets, `issuers` keeps them fresh for the gate, `view` shows one to an operator. Claim checks live in
//! `credential::oidc`.

pub mod fetch;
pub mod issuers;
pub mod jwks;
pub mod settings;
pub mod token;
pub mod view;

pub use issuers::{IssuerState, Issuers, KeyChange, StateFile};
pub use settings::IssuerSettings;
pub use token::OidcError;

/// Where a gate's bot sends its workload token: `Authorization: Bearer <jwt>`, or this header
/// for clients that can send only one header of their own.
pub const TOKEN_HEADER: &str = "cf-access-token";

/// The admin event a gate writes when an issuer's key set gained or lost a key id.
pub const KEYS_CHANGED: &str = "oidc_keys_changed";

/// The prefix of that event's target (`oidc_issuer:<name>`), as alerts name an issuer.
pub const ADMIN_TARGET: &str = "oidc_issuer:";
