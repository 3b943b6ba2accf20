//! OIDC workload identity: CI and Kubernetes jobs present short-lived JWTs their platform
//! signed, and botgate trusts the issuer (`[[oidc_issuer]]`) instead of a stored secret.
//! `settings` parses the issuers, `jwks` their key sets, `token` verifies one token, `fetch`
//! gets key sets, `issuers` keeps them fresh for the gate. Claim checks live in
//! `credential::oidc`.

pub mod fetch;
pub mod issuers;
pub mod jwks;
pub mod settings;
pub mod token;

pub use issuers::{IssuerState, Issuers, KeyChange, StateFile};
pub use settings::IssuerSettings;
pub use token::OidcError;

/// Where a gate's bot sends its workload token: `Authorization: Bearer <jwt>`, or this header
/// for clients that can send only one header of their own.
pub const TOKEN_HEADER: &str = "cf-access-token";
