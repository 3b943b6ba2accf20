//! A strict, panic-free PEM reader that keeps line numbers, so an error can say "block starting
//! at line 12 has no END line (file truncated?)" instead of "invalid PEM". Text before a block
//! (openssl's "Bag Attributes", `-text` dumps, comments) is ignored, as RFC 7468 allows; text
//! after the last block is refused: it is a file cut and glued wrong, or not the file meant.

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    /// 1-based line of the BEGIN line.
    pub line: usize,
    pub der: Vec<u8>,
    /// Headers such as `Proc-Type: 4,ENCRYPTED` (legacy encrypted keys).
    pub encrypted: bool,
}

/// Why PEM text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// A BEGIN line without its END line.
    Unterminated { label: String, line: usize },
    /// END label differs from BEGIN label.
    Mismatched {
        begin: String,
        end: String,
        line: usize,
    },
    /// The body is not valid base64.
    BadBase64 {
        label: String,
        line: usize,
        detail: String,
    },
    /// A BEGIN line that is not `-----BEGIN LABEL-----`.
    BadHeader { line: usize },
    /// Text after the END line of the last block (`end_line`), first seen at `line`.
    Trailing { line: usize, end_line: usize },
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemError::Unterminated { label, line } => {
                write!(
                    f,
                    "PEM block {label:?} starting at line {line} has no END line (file cut short?)"
                )
            }
            PemError::Mismatched { begin, end, line } => {
                write!(f, "line {line}: END {end:?} does not close BEGIN {begin:?}")
            }
            PemError::BadBase64 {
                label,
                line,
                detail,
            } => {
                write!(
                    f,
                    "PEM block {label:?} starting at line {line}: body is not valid base64 ({detail})"
                )
            }
            PemError::BadHeader { line } => write!(f, "line {line}: malformed -----BEGIN line"),
            PemError::Trailing { line, end_line } => write!(
                f,
                "line {line}: unexpected text after the last PEM block (which ends at line {end_line}); remove it, or check the file is not two files glued together"
            ),
        }
    }
}

/// Whether the bytes look like PEM at all (contain a BEGIN marker).
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every block in `bytes`, in order. Non-UTF-8 lines outside blocks are ignored.
pub fn parse(bytes: &[u8]) -> Result<Vec<Block>, PemError> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String, bool)> = None;
    // First non-blank line since the last END (cleared by the next BEGIN).
    let mut after_end: Option<usize> = None;
    let mut last_end = 0;
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        match &mut open {
            None => {
                if !blocks.is_empty() && after_end.is_none() && !line.is_empty() {
                    after_end = Some(line_no);
                }
                if let Some(rest) = line.strip_prefix("-----BEGIN ") {
                    after_end = None;
                    let label = rest
                        .strip_suffix("-----")
                        .ok_or(PemError::BadHeader { line: line_no })?;
                    open = Some((label.to_string(), line_no, String::new(), false));
                }
            }
            Some((label, start, body, encrypted)) => {
                if let Some(rest) = line.strip_prefix("-----END ") {
                    let end = rest.strip_suffix("-----").unwrap_or(rest);
                    if end != label {
                        return Err(PemError::Mismatched {
                            begin: label.clone(),
                            end: end.to_string(),
                            line: line_no,
                        });
                    }
                    let der = decode_base64(body).map_err(|detail| PemError::BadBase64 {
                        label: label.clone(),
                        line: *start,
                        detail,
                    })?;
                    blocks.push(Block {
                        label: label.clone(),
                        line: *start,
                        der,
                        encrypted: *encrypted,
                    });
                    open = None;
                    last_end = line_no;
                } else if line.starts_with("-----BEGIN ") {
                    return Err(PemError::Unterminated {
                        label: label.clone(),
                        line: *start,
                    });
                } else if let Some((key, value)) = line.split_once(':') {
                    // RFC 1421 headers (Proc-Type, DEK-Info) before the body.
                    if key.eq_ignore_ascii_case("Proc-Type") && value.contains("ENCRYPTED") {
                        *encrypted = true;
                    }
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    match (open, after_end) {
        (Some((label, line, _, _)), _) => Err(PemError::Unterminated { label, line }),
        (None, Some(line)) => Err(PemError::Trailing {
            line,
            end_line: last_end,
        }),
        (None, None) => Ok(blocks),
    }
}

/// Standard base64 (RFC 4648, with padding optional), whitespace already removed per line.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let data = text.trim_end_matches('=');
    if text.len() - data.len() > 2 {
        return Err("too much '=' padding".into());
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (pos, c) in data.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = value(c)
            .ok_or_else(|| format!("unexpected character {:?} at offset {pos}", char::from(c)))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Truncation to the low byte is the point of this shift.
            out.push(((acc >> bits) & 0xff) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits >= 6 {
        return Err("length is not a whole number of bytes".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_blocks_with_line_numbers() {
        let text = b"junk\n-----BEGIN FOO-----\naGVsbG8g\nd29ybGQ=\n-----END FOO-----\n\n-----BEGIN BAR-----\nAQID\n-----END BAR-----\n";
        let blocks = parse(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "FOO");
        assert_eq!(blocks[0].line, 2);
        assert_eq!(blocks[0].der, b"hello world");
        assert_eq!(blocks[1].der, [1, 2, 3]);
    }

    #[test]
    fn reports_truncation_mismatch_and_bad_base64() {
        assert!(matches!(
            parse(b"-----BEGIN X-----\nAAAA\n"),
            Err(PemError::Unterminated { line: 1, .. })
        ));
        assert!(matches!(
            parse(b"-----BEGIN X-----\nAAAA\n-----END Y-----"),
            Err(PemError::Mismatched { .. })
        ));
        assert!(matches!(
            parse(b"-----BEGIN X-----\nA*AA\n-----END X-----"),
            Err(PemError::BadBase64 { .. })
        ));
        assert!(matches!(
            parse(b"-----BEGIN X-----\nA\n-----END X-----"),
            Err(PemError::BadBase64 { .. })
        ));
        assert!(matches!(
            parse(b"-----BEGIN X\n"),
            Err(PemError::BadHeader { line: 1 })
        ));
    }

    /// Issue 11 defect 9: junk after a PEM block was accepted silently.
    #[test]
    fn text_after_the_last_block_is_refused_with_its_line() {
        let text = b"-----BEGIN A-----\nAQID\n-----END A-----\n\n  \ngarbage\nmore\n";
        assert_eq!(
            parse(text),
            Err(PemError::Trailing {
                line: 6,
                end_line: 3
            })
        );
        let e = parse(b"-----BEGIN A-----\nAQID\n-----END A-----\x00\x01").unwrap_err();
        assert!(matches!(e, PemError::Mismatched { .. }), "{e}");
        let e = parse(b"-----BEGIN A-----\nAQID\n-----END A-----\n\x00\x01").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 4: unexpected text after the last PEM block")
        );
        // Text before and between blocks (openssl -text dumps, Bag Attributes) is fine, and
        // so are blank lines after the last one.
        let ok = b"Certificate:\n  Data: ...\n-----BEGIN A-----\nAQID\n-----END A-----\nBag Attributes\n    localKeyID: 01\n-----BEGIN B-----\nAQID\n-----END B-----\n\r\n \n";
        assert_eq!(parse(ok).unwrap().len(), 2);
    }

    #[test]
    fn crlf_and_no_blocks() {
        let blocks = parse(b"-----BEGIN A-----\r\nAQID\r\n-----END A-----\r\n").unwrap();
        assert_eq!(blocks[0].der, [1, 2, 3]);
        assert!(parse(b"nothing here").unwrap().is_empty());
    }
}
