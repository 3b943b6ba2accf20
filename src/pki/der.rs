//! Just enough DER to tell "truncated" from "garbage" before handing bytes to x509-parser, and
//! to recognise a bare private key: every X.509 object starts with a SEQUENCE whose header
//! states the total length.

/// What the outer header of a DER object says about `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer {
    /// A SEQUENCE whose stated length matches the bytes (trailing bytes allowed).
    Complete { total: usize },
    /// A SEQUENCE header stating more bytes than there are.
    Truncated { stated: usize, have: usize },
    /// Not a DER SEQUENCE at all.
    NotDer,
}

/// Examine the outer SEQUENCE header.
pub fn outer(bytes: &[u8]) -> Outer {
    let (Some(&tag), Some(&first_len)) = (bytes.first(), bytes.get(1)) else {
        return Outer::NotDer;
    };
    if tag != 0x30 {
        return Outer::NotDer;
    }
    let (header, content) = if first_len < 0x80 {
        (2usize, usize::from(first_len))
    } else {
        let n = usize::from(first_len & 0x7f);
        if n == 0 || n > 4 {
            return Outer::NotDer;
        }
        let Some(len_bytes) = bytes.get(2..2 + n) else {
            return Outer::Truncated {
                stated: usize::MAX,
                have: bytes.len(),
            };
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    let total = header.saturating_add(content);
    if total > bytes.len() {
        Outer::Truncated {
            stated: total,
            have: bytes.len(),
        }
    } else {
        Outer::Complete { total }
    }
}

/// Whether `der` is plausibly a private key (PKCS#8, PKCS#1 RSA or SEC1 EC), by structure.
pub fn looks_like_private_key(der: &[u8]) -> bool {
    matches!(outer(der), Outer::Complete { .. })
        && rustls_pki_types::PrivateKeyDer::try_from(der).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_header_cases() {
        assert_eq!(
            outer(&[0x30, 0x02, 0x05, 0x00]),
            Outer::Complete { total: 4 }
        );
        assert_eq!(
            outer(&[0x30, 0x05, 0x05]),
            Outer::Truncated { stated: 7, have: 3 }
        );
        assert_eq!(
            outer(&[0x30, 0x82, 0x01]),
            Outer::Truncated {
                stated: usize::MAX,
                have: 3
            }
        );
        assert_eq!(
            outer(&[0x30, 0x82, 0x01, 0x00]),
            Outer::Truncated {
                stated: 260,
                have: 4
            }
        );
        assert_eq!(outer(b"hello"), Outer::NotDer);
        assert_eq!(outer(&[]), Outer::NotDer);
        assert_eq!(outer(&[0x30, 0x80]), Outer::NotDer);
    }
}
