//! Human durations: parse `12h`, `30d`, `90d`, `1y`, `45s`, `15m`; format countdowns `364d 3h`.

use chrono::Duration;

/// A duration string that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid duration {input:?}: expected a number and a unit s, m, h, d, w or y (e.g. 12h, 90d, 1y)"
)]
pub struct DurationError {
    pub input: String,
}

/// Parse `N` + unit (`s`, `m`, `h`, `d`, `w`, `y` = 365 days). Zero and negative are refused.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| err())?;
    if n <= 0 || n > 100_000 {
        return Err(err());
    }
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(err()),
    };
    Ok(Duration::seconds(n * secs_per))
}

/// A countdown as an SRE reads it: `364d 3h`, `6d 23h 59m`, `59m 59s`, `0s`; negative → `expired`.
pub fn countdown(left: Duration) -> String {
    let secs = left.num_seconds();
    if secs < 0 {
        return "expired".to_string();
    }
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d >= 7 {
        format!("{d}d {h}h")
    } else if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// How long ago, compact: `3s ago`, `5m ago`, `2h ago`, `4d ago`.
pub fn ago(elapsed: Duration) -> String {
    let secs = elapsed.num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse("90d").unwrap(), Duration::days(90));
        assert_eq!(parse("1y").unwrap(), Duration::days(365));
        assert_eq!(parse("30s").unwrap(), Duration::seconds(30));
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "d", "0d", "-1d", "1x", "1.5d", "10", "99999999999d"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn countdown_formats() {
        assert_eq!(
            countdown(Duration::days(364) + Duration::hours(3)),
            "364d 3h"
        );
        assert_eq!(
            countdown(Duration::days(7) - Duration::seconds(1)),
            "6d 23h 59m"
        );
        assert_eq!(
            countdown(Duration::hours(1) - Duration::seconds(1)),
            "59m 59s"
        );
        assert_eq!(countdown(Duration::seconds(-1)), "expired");
    }
}
