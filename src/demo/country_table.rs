//! The demo's IP → country table: `assets/demo-geo.csv` (`cidr,country`), embedded, answered by
//! longest-prefix match. A stand-in so the demo has real countries today; the full geo module
//! (CSV layouts, mmdb) replaces it by passing `DemoOptions::geo`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::gate::CountryLookup;

/// The embedded demo table.
pub const DEMO_GEO_CSV: &str = include_str!("../../assets/demo-geo.csv");

/// A small CIDR → ISO country table.
#[derive(Debug, Clone)]
pub struct CountryTable {
    /// Longest prefix first, so the first hit is the most specific.
    rows: Vec<(IpNet, String)>,
}

impl CountryTable {
    /// The embedded demo table (cannot fail: it is checked by a unit test).
    pub fn demo() -> Self {
        Self::parse(DEMO_GEO_CSV).unwrap_or(Self { rows: Vec::new() })
    }

    /// Parse `cidr,country` lines; a header line and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("cidr")) {
                continue;
            }
            let (cidr, country) = line
                .split_once(',')
                .ok_or_else(|| format!("line {}: expected `cidr,country`, got {line:?}", i + 1))?;
            let net = crate::policy::compile_cidr(cidr.trim())
                .map_err(|e| format!("line {}: {e}", i + 1))?;
            let country = country.trim();
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!(
                    "line {}: country {country:?} is not an ISO 3166 alpha-2 code",
                    i + 1
                ));
            }
            rows.push((net, country.to_ascii_uppercase()));
        }
        rows.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Ok(Self { rows })
    }
}

impl CountryLookup for CountryTable {
    fn country(&self, ip: IpAddr) -> Option<String> {
        self.rows
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, c)| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_maps_loopback_blocks() {
        let t = CountryTable::parse(DEMO_GEO_CSV).unwrap();
        let c = |ip: &str| t.country(ip.parse().unwrap());
        assert_eq!(c("127.0.0.1").as_deref(), Some("US"));
        assert_eq!(c("127.0.1.10").as_deref(), Some("US"));
        assert_eq!(c("127.0.2.7").as_deref(), Some("DE"));
        assert_eq!(c("127.0.3.1").as_deref(), Some("SG"));
        assert_eq!(c("127.0.4.1").as_deref(), Some("VN"));
        assert_eq!(c("127.0.5.66").as_deref(), Some("RU"));
        assert_eq!(c("127.0.6.1").as_deref(), Some("BR"));
        assert_eq!(c("127.0.9.1"), None);
        assert_eq!(c("10.0.0.1"), None);
    }

    #[test]
    fn longest_prefix_wins_and_bad_rows_name_the_line() {
        let t = CountryTable::parse("cidr,country\n10.0.0.0/8,US\n10.1.0.0/16,DE\n").unwrap();
        assert_eq!(
            t.country("10.1.2.3".parse().unwrap()).as_deref(),
            Some("DE")
        );
        assert_eq!(
            t.country("10.2.2.3".parse().unwrap()).as_deref(),
            Some("US")
        );
        let err = CountryTable::parse("cidr,country\n10.0.0.0/8,USA\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = CountryTable::parse("cidr,country\nnot-a-net,US\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
