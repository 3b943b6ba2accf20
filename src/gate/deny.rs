//! Why a request was refused, and the HTTP outcome for each reason (contract: 401 no or bad
//! credentials, 403 authenticated but not allowed, 404 unknown host, 429 over a rate limit,
//! 502 upstream, 503 audit;
//! requests that break HTTP itself get 400, 414 or 431 as RFC 9110 §15.5 says).

/// A refusal reason, written to `deny_reason` in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    MissingCredentials,
    HalfCredentials,
    DuplicateCredentialHeaders,
    MalformedClientId,
    MalformedSecret,
    UnknownClientId,
    BadSecret,
    TokenExpired,
    TokenRevoked,
    /// `botgate token disable`: kept in the inventory, refused until enabled.
    TokenDisabled,
    /// The token's previous secret after its grace period (`token rotate-secret`).
    TokenSecretSuperseded,
    /// A live token presented from outside its `--allow-ip` networks (the bound travels with
    /// the credential: refused even where a policy would admit it).
    TokenIpNotAllowed,
    /// Over a rate limit (the token's own or the deciding policy's).
    RateLimited,
    NoPolicyMatched,
    BlockedByPolicy,
    UnknownHost,
    UpstreamUnreachable,
    /// The TLS handshake or exchange with an `https://` upstream failed (its certificate, its
    /// name, or an alert it sent); the cause is in the event's `details.upstream_tls_error`.
    UpstreamTlsError,
    AuditUnavailable,
    CertUntrusted,
    CertExpired,
    CertRevoked,
    /// A client certificate in a form botgate does not accept (e.g. v1 below an intermediate).
    CertUnsupported,
    CertRequired,
    /// The request breaks HTTP/1.1 syntax or its rules (RFC 9112): a bad header line,
    /// conflicting framing, two `Host` headers, a body that does not decode.
    MalformedRequest,
    /// The request head has more headers or bytes than `[gate] max_headers`/`max_header_bytes`.
    HeadersTooLarge,
    /// The request target alone is longer than the HTTP parser takes (64 KiB).
    UriTooLong,
    /// `/cdn-cgi/access/get-identity` with an assertion that does not verify.
    AssertionInvalid,
    /// A workload token that is not a JWT, too long, or lacks `exp`/`sub`.
    OidcMalformed,
    /// A workload token whose `iss` is no `[[oidc_issuer]]`.
    OidcUnknownIssuer,
    /// A workload token whose signature does not verify (unknown key, `alg: none`, HMAC, …).
    OidcBadSignature,
    OidcExpired,
    /// `nbf` or `iat` later than now plus the issuer's leeway.
    OidcNotYetValid,
    /// `aud` names none of the issuer's `audiences`.
    OidcWrongAudience,
}

impl From<crate::policy::Refusal> for DenyReason {
    fn from(r: crate::policy::Refusal) -> Self {
        match r {
            crate::policy::Refusal::Blocked => DenyReason::BlockedByPolicy,
            crate::policy::Refusal::NoPolicyMatched => DenyReason::NoPolicyMatched,
            crate::policy::Refusal::NoCredentials => DenyReason::MissingCredentials,
        }
    }
}

impl From<&crate::oidc::OidcError> for DenyReason {
    fn from(e: &crate::oidc::OidcError) -> Self {
        use crate::oidc::OidcError as E;
        match e {
            E::Malformed(_) => DenyReason::OidcMalformed,
            E::UnknownIssuer(_) => DenyReason::OidcUnknownIssuer,
            E::UnknownKey { .. } | E::BadSignature(_) => DenyReason::OidcBadSignature,
            E::Expired(_) => DenyReason::OidcExpired,
            E::NotYetValid(_) => DenyReason::OidcNotYetValid,
            E::WrongAudience(_) => DenyReason::OidcWrongAudience,
        }
    }
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::MissingCredentials => "missing_credentials",
            DenyReason::HalfCredentials => "half_credentials",
            DenyReason::DuplicateCredentialHeaders => "duplicate_credential_headers",
            DenyReason::MalformedClientId => "malformed_client_id",
            DenyReason::MalformedSecret => "malformed_secret",
            DenyReason::UnknownClientId => "unknown_client_id",
            DenyReason::BadSecret => "bad_secret",
            DenyReason::TokenExpired => "token_expired",
            DenyReason::TokenRevoked => "token_revoked",
            DenyReason::TokenDisabled => "token_disabled",
            DenyReason::TokenSecretSuperseded => "token_secret_superseded",
            DenyReason::TokenIpNotAllowed => "token_ip_not_allowed",
            DenyReason::RateLimited => "rate_limited",
            DenyReason::NoPolicyMatched => "no_policy_matched",
            DenyReason::BlockedByPolicy => "blocked_by_policy",
            DenyReason::UnknownHost => "unknown_host",
            DenyReason::UpstreamUnreachable => "upstream_unreachable",
            DenyReason::UpstreamTlsError => "upstream_tls_error",
            DenyReason::AuditUnavailable => "audit_unavailable",
            DenyReason::CertUntrusted => "cert_untrusted",
            DenyReason::CertExpired => "cert_expired",
            DenyReason::CertRevoked => "cert_revoked",
            DenyReason::CertUnsupported => "cert_unsupported",
            DenyReason::CertRequired => "cert_required",
            DenyReason::MalformedRequest => "malformed_request",
            DenyReason::HeadersTooLarge => "headers_too_large",
            DenyReason::UriTooLong => "uri_too_long",
            DenyReason::AssertionInvalid => "assertion_invalid",
            DenyReason::OidcMalformed => "oidc_malformed",
            DenyReason::OidcUnknownIssuer => "oidc_unknown_issuer",
            DenyReason::OidcBadSignature => "oidc_bad_signature",
            DenyReason::OidcExpired => "oidc_expired",
            DenyReason::OidcNotYetValid => "oidc_not_yet_valid",
            DenyReason::OidcWrongAudience => "oidc_wrong_audience",
        }
    }

    /// The HTTP status answered for this reason.
    pub fn status(self) -> u16 {
        match self {
            DenyReason::NoPolicyMatched | DenyReason::BlockedByPolicy => 403,
            DenyReason::UnknownHost => 404,
            DenyReason::RateLimited => 429,
            DenyReason::MalformedRequest => 400,
            DenyReason::UriTooLong => 414,
            DenyReason::HeadersTooLarge => 431,
            DenyReason::UpstreamUnreachable | DenyReason::UpstreamTlsError => 502,
            DenyReason::AuditUnavailable => 503,
            _ => 401,
        }
    }

    /// The short public message in the JSON body; details stay in the audit log (by ray id).
    pub fn public_message(self) -> &'static str {
        match self.status() {
            401 => "authentication required or failed",
            403 => "access denied by policy",
            400 => "malformed request",
            404 => "unknown application host",
            414 => "request target too long",
            429 => "too many requests",
            431 => "request header fields too large",
            502 => "upstream unreachable",
            _ => "service unavailable",
        }
    }
}
