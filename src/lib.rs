//! botgate: a Zero-Trust gate for non-human clients (service tokens and mTLS), its credential
//! inventory and PKI, and a terminal ops console. See ARCHITECTURE in the README.
#![forbid(unsafe_code)]

pub mod assertion;
pub mod atomic_file;
pub mod audit;
pub mod bounds;
pub mod cert_names;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod credential;
pub mod demo;
pub mod detect;
pub mod diagnostics;
pub mod doctor;
pub mod duration;
pub mod exit;
pub mod expiry;
pub mod gate;
pub mod geo;
pub mod input;
pub mod oidc;
pub mod paths;
pub mod pki;
pub mod policy;
pub mod retire;
pub mod rotation;
pub mod runtime;
pub mod scan;
pub mod services;
pub mod sink;
pub mod store;
pub mod upstream_tls;

/// Install rustls' ring crypto provider for the process (reqwest 0.13 and tokio-rustls need
/// one; installing twice is refused harmlessly). Called by `main` and `Runtime::start`.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
