//! What a credential carries beside its secret: the networks it may be used from and the rate
//! it may be used at. These are values, parsed once from the CLI, the policy file or a store
//! row into types that cannot be wrong; the gate's limiter (`gate::limits`) and the store
//! both take them from here, so `600/min` means the same thing everywhere.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

/// A token's own bounds (`token create|update --allow-ip … --rate …`), stored with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBounds {
    /// The networks the token may be used from; empty means anywhere.
    pub allow_ips: Vec<IpNet>,
    /// The token's own rate limit, on every app (a policy's limit applies besides).
    pub rate_limit: Option<RateLimit>,
}

impl TokenBounds {
    /// Whether a request from `ip` is within the token's networks (always, when unbound).
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|n| n.contains(&ip))
    }

    /// The networks as stored and shown: canonical CIDRs separated by single spaces.
    pub fn allow_ips_text(&self) -> Option<String> {
        if self.allow_ips.is_empty() {
            return None;
        }
        let list: Vec<String> = self.allow_ips.iter().map(IpNet::to_string).collect();
        Some(list.join(" "))
    }

    /// Networks from their stored text (space- or comma-separated). Fails closed: an entry
    /// that does not parse (a hand-edited row) is dropped, and when none is left the bound
    /// becomes the unspecified addresses, which no client has, never "anywhere".
    pub fn parse_allow_ips_text(text: Option<&str>) -> Vec<IpNet> {
        let entries: Vec<&str> = text
            .unwrap_or_default()
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect();
        let nets: Vec<IpNet> = entries
            .iter()
            .filter_map(|s| parse_network(s).ok())
            .collect();
        if nets.is_empty() && !entries.is_empty() {
            return vec![
                IpNet::from(IpAddr::from([0, 0, 0, 0])),
                IpNet::from(IpAddr::from([0u16; 8])),
            ];
        }
        nets
    }
}

/// Parse a network for `--allow-ip`: a CIDR, or a bare address meaning that one address.
pub fn parse_network(text: &str) -> Result<IpNet, BoundsError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(BoundsError::HostBits {
                input: text.to_string(),
                network: net.trunc(),
            });
        }
        return Ok(net);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(BoundsError::Network {
            input: text.to_string(),
        }),
    }
}

/// A bound that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error(
        "{input:?} is not a network: expected a CIDR or an address (e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)"
    )]
    Network { input: String },
    #[error("{input:?} has host bits set; write {network} if that is the network you mean")]
    HostBits { input: String, network: IpNet },
    #[error(
        "{input:?} is not a rate: expected COUNT/UNIT with a unit s, min, h or d (e.g. 600/min, 10/s, 5000/h)"
    )]
    Rate { input: String },
    #[error("{input:?}: the count must be between 1 and {max}", max = u32::MAX)]
    RateCount { input: String },
    #[error("burst {burst} is not allowed: it must be at least 1")]
    Burst { burst: i64 },
}

/// The unit of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RatePeriod {
    Second,
    Minute,
    Hour,
    Day,
}

impl RatePeriod {
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(match self {
            RatePeriod::Second => 1,
            RatePeriod::Minute => 60,
            RatePeriod::Hour => 3600,
            RatePeriod::Day => 86_400,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RatePeriod::Second => "s",
            RatePeriod::Minute => "min",
            RatePeriod::Hour => "h",
            RatePeriod::Day => "d",
        }
    }
}

/// A GCRA rate: `count` requests per `period` sustained, and up to `burst` at once (default
/// `count`: a client may spend a whole period's requests at once, then one per
/// `period / count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub count: NonZeroU32,
    pub period: RatePeriod,
    pub burst: Option<NonZeroU32>,
}

impl RateLimit {
    /// Parse `COUNT/UNIT` (`600/min`, `10/s`, `5000/h`, `1/d`; `sec`, `second`, `minute`,
    /// `hour`, `day` are accepted too) with an optional burst.
    pub fn parse(text: &str, burst: Option<i64>) -> Result<Self, BoundsError> {
        let bad = || BoundsError::Rate {
            input: text.to_string(),
        };
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count = count.trim();
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count = count
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| BoundsError::RateCount {
                input: text.to_string(),
            })?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => RatePeriod::Second,
            "m" | "min" | "minute" => RatePeriod::Minute,
            "h" | "hour" => RatePeriod::Hour,
            "d" | "day" => RatePeriod::Day,
            _ => return Err(bad()),
        };
        let burst = match burst {
            None => None,
            Some(b) => Some(
                u32::try_from(b)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or(BoundsError::Burst { burst: b })?,
            ),
        };
        Ok(Self {
            count,
            period,
            burst,
        })
    }

    /// The rate without its burst, as written: `600/min`.
    pub fn rate_text(&self) -> String {
        format!("{}/{}", self.count, self.period.as_str())
    }

    /// Requests allowed at once.
    pub fn burst_size(&self) -> NonZeroU32 {
        self.burst.unwrap_or(self.count)
    }

    /// The GCRA parameters one gate of `gates` enforces: the rate divided by `gates`, the burst
    /// divided and rounded down (at least 1), so an evenly spread client gets no more than the
    /// limit across the fleet. `gates` below 1 counts as 1.
    pub fn per_gate(&self, gates: u32) -> governor::Quota {
        let gates = gates.max(1);
        // One request every period × gates / count; at least 1 ns (governor refuses zero).
        let nanos =
            self.period.as_duration().as_nanos() * u128::from(gates) / u128::from(self.count.get());
        let interval = Duration::from_nanos(u64::try_from(nanos.max(1)).unwrap_or(u64::MAX));
        let burst = NonZeroU32::new(self.burst_size().get() / gates).unwrap_or(NonZeroU32::MIN);
        // `with_period` is `None` only for a zero interval, excluded above.
        governor::Quota::with_period(interval)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.period.as_str())?;
        if let Some(b) = self.burst {
            write!(f, " burst {b}")?;
        }
        Ok(())
    }
}

impl FromStr for RateLimit {
    type Err = BoundsError;

    /// `600/min` or `600/min burst 50` (the `Display` form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(" burst ") {
            Some((rate, burst)) => {
                let burst = burst.trim().parse::<i64>().map_err(|_| BoundsError::Rate {
                    input: s.to_string(),
                })?;
                Self::parse(rate, Some(burst))
            }
            None => Self::parse(s, None),
        }
    }
}

/// What a policy's rate limit does when a client is over it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitMode {
    /// Refuse with 429 (the default).
    #[default]
    Enforce,
    /// Forward anyway and mark the audit event (`details.rate_limited_shadow`).
    Shadow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_each_unit_and_print_back() {
        let r = RateLimit::parse("600/min", None).unwrap();
        assert_eq!((r.count.get(), r.period), (600, RatePeriod::Minute));
        assert_eq!(r.to_string(), "600/min");
        assert_eq!(r.burst_size().get(), 600);
        for (text, period) in [
            ("10/s", RatePeriod::Second),
            ("10/second", RatePeriod::Second),
            ("5000/h", RatePeriod::Hour),
            ("1/day", RatePeriod::Day),
        ] {
            assert_eq!(RateLimit::parse(text, None).unwrap().period, period);
        }
        let with_burst = RateLimit::parse("60/min", Some(5)).unwrap();
        assert_eq!(with_burst.to_string(), "60/min burst 5");
        assert_eq!("60/min burst 5".parse::<RateLimit>().unwrap(), with_burst);
    }

    #[test]
    fn bad_rates_say_what_was_expected() {
        for bad in ["fast", "600", "/min", "600/fortnight", "-1/min", "6 0/min"] {
            let e = RateLimit::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains("expected COUNT/UNIT"), "{bad}: {e}");
        }
        assert!(matches!(
            RateLimit::parse("0/min", None),
            Err(BoundsError::RateCount { .. })
        ));
        assert!(matches!(
            RateLimit::parse("1/min", Some(0)),
            Err(BoundsError::Burst { burst: 0 })
        ));
    }

    #[test]
    fn each_gate_takes_its_share_of_rate_and_burst() {
        let r = RateLimit::parse("60/min", Some(5)).unwrap();
        let one = r.per_gate(1);
        assert_eq!(one.replenish_interval(), Duration::from_secs(1));
        assert_eq!(one.burst_size().get(), 5);
        let two = r.per_gate(2);
        assert_eq!(two.replenish_interval(), Duration::from_secs(2));
        assert_eq!(two.burst_size().get(), 2);
        // Never below one request at once, and zero gates is one.
        assert_eq!(r.per_gate(10).burst_size().get(), 1);
        assert_eq!(r.per_gate(0), one);
    }

    #[test]
    fn networks_take_bare_addresses_and_refuse_host_bits() {
        assert_eq!(
            parse_network("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert!(matches!(
            parse_network("10.0.0.1/8"),
            Err(BoundsError::HostBits { .. })
        ));
        assert!(matches!(
            parse_network("10.0.0/8"),
            Err(BoundsError::Network { .. })
        ));
        let b = TokenBounds {
            allow_ips: vec![parse_network("127.0.0.1").unwrap()],
            rate_limit: None,
        };
        assert!(b.ip_allowed("127.0.0.1".parse().unwrap()));
        assert!(!b.ip_allowed("127.0.0.2".parse().unwrap()));
        assert!(TokenBounds::default().ip_allowed("127.0.0.2".parse().unwrap()));
        let text = b.allow_ips_text().unwrap();
        assert_eq!(TokenBounds::parse_allow_ips_text(Some(&text)), b.allow_ips);
        let broken = TokenBounds {
            allow_ips: TokenBounds::parse_allow_ips_text(Some("10.0.0/8")),
            rate_limit: None,
        };
        assert!(
            !broken.ip_allowed("10.0.0.1".parse().unwrap()),
            "fails closed"
        );
    }
}
