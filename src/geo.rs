//! IP → country. Either a CSV of `cidr,country` or `start_ip,end_ip,country` (the free DB-IP
//! and IP2Location LITE layouts: IPv4 and IPv6, dotted or decimal addresses, quoted fields,
//! an optional header, extra columns ignored) loaded into sorted, non-overlapping ranges for
//! binary search; or a MaxMind `.mmdb` file (GeoLite2 / DB-IP country). Unknown stays `None`.
//!
//! CSV rows may nest (`10.0.0.0/8,US` and `10.1.0.0/16,DE`): the most specific range wins.
//! Rows that overlap without nesting are an error naming both lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A geo database could not be loaded. Always names the file (and line, for CSV).
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read the geo database {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{path}:{line}: range overlaps the one on line {other} without nesting in it; fix one of them"
    )]
    Overlap {
        path: PathBuf,
        line: usize,
        other: usize,
    },
    #[error("cannot open the MaxMind database {path}: {message}")]
    Mmdb { path: PathBuf, message: String },
}

/// A loaded IP → country database.
pub struct GeoDb {
    source: Source,
}

enum Source {
    Ranges {
        v4: Vec<Range<u32>>,
        v6: Vec<Range<u128>>,
    },
    Mmdb(maxminddb::Reader<Vec<u8>>),
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Ranges { v4, v6 } => write!(
                f,
                "GeoDb(csv: {} IPv4 + {} IPv6 ranges)",
                v4.len(),
                v6.len()
            ),
            Source::Mmdb(r) => write!(f, "GeoDb(mmdb: {})", r.metadata().database_type),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range<T> {
    start: T,
    end: T,
    country: [u8; 2],
}

impl GeoDb {
    /// Open `path`: a `.mmdb` file as MaxMind, anything else as CSV.
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mmdb"))
        {
            Self::open_mmdb(path)
        } else {
            Self::open_csv(path)
        }
    }

    /// Load a CSV database.
    pub fn open_csv(path: &Path) -> Result<Self, GeoError> {
        let text =
            crate::input::read(path, crate::input::GEO_DB).map_err(|source| GeoError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_csv(&String::from_utf8_lossy(&text), path)
    }

    /// Parse CSV text (`path` is only used in errors).
    pub fn from_csv(text: &str, path: &Path) -> Result<Self, GeoError> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            match parse_row(&fields) {
                Ok(Some(row)) => rows.push((row, n)),
                Ok(None) => {}
                // The first row of a file may be a header (`network,country_iso_code`, …).
                Err(_) if rows.is_empty() && looks_like_header(&fields) => {}
                Err(message) => {
                    return Err(GeoError::Parse {
                        path: path.to_path_buf(),
                        line: n,
                        message,
                    });
                }
            }
        }
        let (v4, v6): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(r, _)| r.is_v4);
        let flat = |rows: Vec<(Row, usize)>| {
            flatten(rows).map_err(|(line, other)| GeoError::Overlap {
                path: path.to_path_buf(),
                line,
                other,
            })
        };
        let v4 = flat(v4)?
            .into_iter()
            .map(|r| Range {
                start: r.start as u32,
                end: r.end as u32,
                country: r.country,
            })
            .collect();
        let v6 = flat(v6)?
            .into_iter()
            .map(|r| Range {
                start: r.start,
                end: r.end,
                country: r.country,
            })
            .collect();
        Ok(Self {
            source: Source::Ranges { v4, v6 },
        })
    }

    /// Open a MaxMind DB file (read into memory).
    pub fn open_mmdb(path: &Path) -> Result<Self, GeoError> {
        let bytes =
            crate::input::read(path, crate::input::GEO_DB).map_err(|source| GeoError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| GeoError::Mmdb {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            source: Source::Mmdb(reader),
        })
    }

    /// The ISO 3166 alpha-2 country of `ip`, upper case; `None` when unknown.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        // An IPv4-mapped IPv6 address (a dual-stack socket's peer) is the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match &self.source {
            Source::Ranges { v4, v6 } => {
                let cc = match ip {
                    IpAddr::V4(a) => find(v4, u32::from(a)),
                    IpAddr::V6(a) => find(v6, u128::from(a)),
                }?;
                Some(String::from_utf8_lossy(&cc).into_owned())
            }
            Source::Mmdb(reader) => {
                let found = reader.lookup(ip).ok()?;
                let iso = |p: &[maxminddb::PathElement<'_>]| {
                    found.decode_path::<String>(p).ok().flatten()
                };
                iso(&maxminddb::path!["country", "iso_code"])
                    .or_else(|| iso(&maxminddb::path!["registered_country", "iso_code"]))
                    .map(|c| c.to_ascii_uppercase())
            }
        }
    }
}

fn find<T: Ord + Copy>(ranges: &[Range<T>], ip: T) -> Option<[u8; 2]> {
    let i = ranges.partition_point(|r| r.start <= ip);
    let r = ranges.get(i.checked_sub(1)?)?;
    (ip <= r.end).then_some(r.country)
}

/// One parsed row, addresses widened to u128 (IPv4 as its 32-bit value).
#[derive(Debug, Clone, Copy)]
struct Row {
    is_v4: bool,
    start: u128,
    end: u128,
    country: [u8; 2],
}

/// `Ok(None)` for a row with an "unknown" country (`-`, `ZZ`, empty), which is skipped.
fn parse_row(fields: &[String]) -> Result<Option<Row>, String> {
    let first = fields.first().map(String::as_str).unwrap_or_default();
    let (start, end, country) = if first.contains('/') {
        let net: ipnet::IpNet = first
            .parse()
            .map_err(|_| format!("invalid CIDR {first:?}"))?;
        let cc = fields.get(1).ok_or("expected `cidr,country`")?;
        (net.network(), net.broadcast(), cc)
    } else {
        let (Some(s), Some(e), Some(cc)) = (fields.first(), fields.get(1), fields.get(2)) else {
            return Err("expected `cidr,country` or `start_ip,end_ip,country`".into());
        };
        (parse_addr(s)?, parse_addr(e)?, cc)
    };
    let country = match country.trim() {
        "" | "-" | "ZZ" | "zz" => return Ok(None),
        c if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            let b = c.to_ascii_uppercase().into_bytes();
            [b[0], b[1]]
        }
        c => {
            return Err(format!(
                "invalid country code {c:?}: expected two letters (ISO 3166 alpha-2)"
            ));
        }
    };
    let row = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => Row {
            is_v4: true,
            start: u32::from(s).into(),
            end: u32::from(e).into(),
            country,
        },
        (IpAddr::V6(s), IpAddr::V6(e)) => match (s.to_ipv4_mapped(), e.to_ipv4_mapped()) {
            // IP2Location's IPv6 files carry IPv4 as IPv4-mapped ranges.
            (Some(s), Some(e)) => Row {
                is_v4: true,
                start: u32::from(s).into(),
                end: u32::from(e).into(),
                country,
            },
            _ => Row {
                is_v4: false,
                start: s.into(),
                end: e.into(),
                country,
            },
        },
        _ => return Err("start and end are not the same IP version".into()),
    };
    if row.start > row.end {
        return Err("start address is after end address".into());
    }
    Ok(Some(row))
}

/// A dotted / colon address, or a decimal IP number (IP2Location): ≤ u32::MAX is IPv4.
fn parse_addr(s: &str) -> Result<IpAddr, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    match s.parse::<u128>() {
        Ok(n) => Ok(match u32::try_from(n) {
            Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
            Err(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }),
        Err(_) => Err(format!("invalid IP address {s:?}")),
    }
}

fn looks_like_header(fields: &[String]) -> bool {
    fields
        .iter()
        .all(|f| !f.is_empty() && !f.bytes().any(|b| b.is_ascii_digit()))
}

/// Split one CSV line: commas outside double quotes separate; `""` in quotes is a quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// Sorted, non-overlapping ranges from rows that may nest (innermost wins). Err((line, other))
/// for rows that overlap without nesting, or the same range mapped to two countries.
fn flatten(mut rows: Vec<(Row, usize)>) -> Result<Vec<Row>, (usize, usize)> {
    rows.sort_by(|(a, _), (b, _)| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut emit = |start: u128, end: u128, country: [u8; 2], is_v4: bool| {
        if start > end {
            return;
        }
        match out.last_mut() {
            Some(last) if last.country == country && last.end.checked_add(1) == Some(start) => {
                last.end = end
            }
            _ => out.push(Row {
                is_v4,
                start,
                end,
                country,
            }),
        }
    };
    // Enclosing ranges not yet closed, outermost first; `cursor` is the first address not yet
    // emitted (`None` once the top of the address space was emitted).
    let mut stack: Vec<(Row, usize)> = Vec::new();
    let mut cursor: Option<u128> = Some(0);
    for (row, line) in rows {
        while let Some(&(top, _)) = stack.last() {
            if top.end >= row.start {
                break;
            }
            stack.pop();
            if let Some(c) = cursor {
                emit(c.max(top.start), top.end, top.country, top.is_v4);
            }
            cursor = top.end.checked_add(1);
        }
        if let Some(&(top, top_line)) = stack.last() {
            let same = top.start == row.start && top.end == row.end;
            if row.end > top.end || (same && top.country != row.country) {
                return Err((line, top_line));
            }
            if let (Some(c), Some(before)) = (cursor, row.start.checked_sub(1)) {
                emit(c.max(top.start), before, top.country, top.is_v4);
            }
        }
        cursor = Some(row.start);
        stack.push((row, line));
    }
    while let Some((top, _)) = stack.pop() {
        if let Some(c) = cursor {
            emit(c.max(top.start), top.end, top.country, top.is_v4);
        }
        cursor = top.end.checked_add(1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
