//! PKI rows: CAs and certificates (filled in by the mTLS work).
