//! Geo lookups on CSV in every supported layout, on the shipped demo CSV, and on `.mmdb` files
//! generated here with `maxminddb-writer`.

use super::*;
use proptest::prelude::*;

fn csv(text: &str) -> GeoDb {
    GeoDb::from_csv(text, Path::new("test.csv")).unwrap()
}

fn cc(db: &GeoDb, ip: &str) -> Option<String> {
    db.country(ip.parse().unwrap())
}

fn err(text: &str) -> String {
    GeoDb::from_csv(text, Path::new("geo.csv"))
        .unwrap_err()
        .to_string()
}

#[test]
fn cidr_layout_with_header_quotes_ipv6_and_nesting() {
    let db = csv("network,country\n\
         10.0.0.0/8,US\n\
         \"10.1.0.0/16\",\"de\"\n\
         10.1.2.0/24,SG\n\
         2001:db8::/32,FR\n\
         2001:db8:1::/48,JP\n");
    assert_eq!(cc(&db, "10.0.0.1").as_deref(), Some("US"));
    assert_eq!(
        cc(&db, "10.1.0.1").as_deref(),
        Some("DE"),
        "more specific wins; codes upper-cased"
    );
    assert_eq!(cc(&db, "10.1.2.255").as_deref(), Some("SG"));
    assert_eq!(
        cc(&db, "10.1.3.0").as_deref(),
        Some("DE"),
        "the enclosing range resumes after the inner"
    );
    assert_eq!(cc(&db, "10.255.255.255").as_deref(), Some("US"));
    assert_eq!(cc(&db, "11.0.0.0"), None);
    assert_eq!(cc(&db, "2001:db8:1::5").as_deref(), Some("JP"));
    assert_eq!(cc(&db, "2001:db8:2::5").as_deref(), Some("FR"));
    assert_eq!(
        cc(&db, "::ffff:10.1.2.3").as_deref(),
        Some("SG"),
        "IPv4-mapped IPv6 is IPv4"
    );
}

#[test]
fn dbip_start_end_layout() {
    let db = csv("1.0.0.0,1.0.0.255,AU\n\
         1.0.1.0,1.0.3.255,CN\n\
         2c0f:fff0::,2c0f:fff0:ffff:ffff:ffff:ffff:ffff:ffff,NG\n\
         255.255.255.0,255.255.255.255,ZZ\n");
    assert_eq!(cc(&db, "1.0.2.9").as_deref(), Some("CN"));
    assert_eq!(cc(&db, "1.0.0.0").as_deref(), Some("AU"));
    assert_eq!(cc(&db, "2c0f:fff0::1").as_deref(), Some("NG"));
    assert_eq!(cc(&db, "255.255.255.255"), None, "ZZ means unknown");
}

#[test]
fn ip2location_decimal_layout_with_quoted_names() {
    let db = csv("\"0\",\"16777215\",\"-\",\"-\"\n\
         \"16777216\",\"16777471\",\"AU\",\"Australia\"\n\
         \"16778240\",\"16779263\",\"KR\",\"Korea (Republic of)\"\n\
         \"281470698586112\",\"281470698586367\",\"US\",\"United States of America\"\n\
         \"58569071813452613185929873510317667328\",\"58569071813452613185929873510317667583\",\"IT\",\"Italy, Republic\"\n");
    assert_eq!(cc(&db, "1.0.0.7").as_deref(), Some("AU"));
    assert_eq!(cc(&db, "0.0.0.1"), None, "`-` rows are skipped");
    // ::ffff:1.1.0.0 / 1.1.0.255 as IPv6 numbers: stored as IPv4.
    assert_eq!(cc(&db, "1.1.0.9").as_deref(), Some("US"));
    let it = Ipv6Addr::from(58569071813452613185929873510317667400u128);
    assert_eq!(db.country(IpAddr::V6(it)).as_deref(), Some("IT"));
}

#[test]
fn errors_name_file_line_and_problem() {
    assert_eq!(
        err("10.0.0.0/8,US\n10.0.0.0/33,DE\n"),
        "geo.csv:2: invalid CIDR \"10.0.0.0/33\""
    );
    assert!(err("10.0.0.0/8,USA\n").starts_with("geo.csv:1: invalid country code \"USA\""));
    assert!(
        err("# c\n\n1.0.0.9,1.0.0.1,AU\n").starts_with("geo.csv:3: start address is after end")
    );
    assert!(err("1.0.0.0,::1,AU\n").contains("same IP version"));
    assert!(
        err("1.0.0.0,1.0.0.9\n").contains("expected `cidr,country` or `start_ip,end_ip,country`")
    );
    assert!(
        err("10.0.0.0/8,US\nnot-an-ip,1.0.0.1,DE\n").starts_with("geo.csv:2: invalid IP address")
    );
    assert_eq!(
        err("1.0.0.0,1.0.0.9,AU\n1.0.0.5,1.0.0.20,NZ\n"),
        "geo.csv:2: range overlaps the one on line 1 without nesting in it; fix one of them"
    );
    assert!(err("10.0.0.0/8,US\n10.0.0.0/8,DE\n").contains("line 1"));
    let missing = GeoDb::open(Path::new("/nonexistent/geo.csv"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/geo.csv"), "{missing}");
}

#[test]
fn shipped_demo_csv_maps_loopback_blocks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-geo.csv");
    let db = GeoDb::open(&path).unwrap();
    for (ip, want) in [
        ("127.0.0.1", Some("US")),
        ("127.0.1.10", Some("US")),
        ("127.0.2.10", Some("DE")),
        ("127.0.3.10", Some("SG")),
        ("127.0.4.10", Some("VN")),
        ("127.0.5.10", Some("RU")),
        ("127.0.6.10", Some("BR")),
        ("127.0.7.10", None),
        ("::1", None),
    ] {
        assert_eq!(cc(&db, ip).as_deref(), want, "{ip}");
    }
}

/// An `.mmdb` with GeoIP2-Country-shaped records, IPv6 tree (IPv4 under ::/96).
fn write_mmdb(dir: &Path) -> PathBuf {
    use maxminddb_writer::Database;
    use maxminddb_writer::metadata::IpVersion;
    use maxminddb_writer::paths::IpAddrWithMask;
    #[derive(serde::Serialize)]
    struct Iso {
        iso_code: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Country {
        #[serde(skip_serializing_if = "Option::is_none")]
        country: Option<Iso>,
        registered_country: Iso,
    }
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V6;
    db.metadata.binary_format_major_version = 2;
    db.metadata.database_type = "botgate-test-country".into();
    db.metadata.languages = vec!["en".into()];
    let mut add = |net: &str, country: Option<&'static str>, registered: &'static str| {
        let data = db
            .insert_value(Country {
                country: country.map(|c| Iso { iso_code: c }),
                registered_country: Iso {
                    iso_code: registered,
                },
            })
            .unwrap();
        db.insert_node(net.parse::<IpAddrWithMask>().unwrap(), data);
    };
    add("::7f00:100/120", Some("US"), "US"); // 127.0.1.0/24
    add("::7f00:200/120", Some("DE"), "DE"); // 127.0.2.0/24
    add("::c633:6400/120", None, "SG"); // 198.51.100.0/24: only a registered country
    add("2001:db8::/32", Some("fr"), "FR");
    let path = dir.join("country.mmdb");
    let file = std::fs::File::create(&path).unwrap();
    db.write_to(std::io::BufWriter::new(file)).unwrap();
    path
}

#[test]
fn mmdb_lookups_ipv4_ipv6_and_registered_country_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let db = GeoDb::open(&write_mmdb(dir.path())).unwrap();
    assert_eq!(cc(&db, "127.0.1.5").as_deref(), Some("US"));
    assert_eq!(cc(&db, "127.0.2.200").as_deref(), Some("DE"));
    assert_eq!(cc(&db, "::ffff:127.0.2.1").as_deref(), Some("DE"));
    assert_eq!(cc(&db, "198.51.100.1").as_deref(), Some("SG"));
    assert_eq!(cc(&db, "2001:db8::1").as_deref(), Some("FR"));
    assert_eq!(cc(&db, "127.0.3.1"), None);
    assert_eq!(cc(&db, "2001:db9::1"), None);
    assert!(format!("{db:?}").contains("botgate-test-country"));
}

#[test]
fn mmdb_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.mmdb");
    std::fs::write(&bad, b"not a maxmind database").unwrap();
    let e = GeoDb::open(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot open the MaxMind database {}",
            bad.display()
        )),
        "{e}"
    );
    let e = GeoDb::open(&dir.path().join("missing.mmdb"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.mmdb"), "{e}");
}

proptest! {
    /// CIDRs always nest or are disjoint, so any set of them loads, and every lookup equals
    /// the longest-prefix match computed naively.
    #[test]
    fn csv_lookup_is_longest_prefix_match(
        nets in proptest::collection::vec((0u32..=0xff_ff, 16u8..=32, 0usize..4), 1..30),
        probes in proptest::collection::vec(0u32..=0xff_ff, 1..50),
    ) {
        const CC: [&str; 4] = ["US", "DE", "SG", "VN"];
        // All inside 10.0.0.0/16 so that they collide often.
        let rows: Vec<(ipnet::Ipv4Net, &str)> = nets
            .iter()
            .map(|(low, len, c)| (ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | low), *len).unwrap().trunc(), CC[*c]))
            .collect();
        // Same network twice with different countries is a (reported) conflict: keep the first.
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<_> = rows.into_iter().filter(|(n, _)| seen.insert(*n)).collect();
        let text: String = rows.iter().map(|(n, c)| format!("{n},{c}\n")).collect();
        let db = GeoDb::from_csv(&text, Path::new("p.csv")).unwrap();
        for p in probes {
            let ip = Ipv4Addr::from(0x0a00_0000 | p);
            let want = rows.iter().filter(|(n, _)| n.contains(&ip)).max_by_key(|(n, _)| n.prefix_len()).map(|(_, c)| c.to_string());
            prop_assert_eq!(db.country(IpAddr::V4(ip)), want, "{}", ip);
        }
    }
}
