//! Human durations: parse `12h`, `30d`, `90d`, `1y`, `45s`, `15m`; format countdowns `364d 3h`.

use chrono::Duration;

/// Longest duration accepted anywhere (lifetimes, windows, periods): 100 years.
pub const MAX: Duration = Duration::days(100 * 365);

/// A duration string that could not be parsed, or is out of range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error(
        "invalid duration {input:?}: expected a number and a unit s, m, h, d, w or y (e.g. 12h, 90d, 1y)"
    )]
    Syntax { input: String },
    #[error("invalid duration {input:?}: it is zero; give a length of at least 1s")]
    Zero { input: String },
    #[error("invalid duration {input:?}: too long; the maximum is 100y (36500d)")]
    TooLong { input: String },
}

/// Parse `N` + unit (`s`, `m`, `h`, `d`, `w`, `y` = 365 days). Zero and more than `MAX` are
/// refused (each with its own message), as is a negative or unitless number.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let input_owned = || input.to_string();
    let syntax = || DurationError::Syntax {
        input: input_owned(),
    };
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(syntax)?;
    let (num, unit) = s.split_at(split);
    let secs_per: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(syntax()),
    };
    if num.is_empty() {
        return Err(syntax());
    }
    let too_long = || DurationError::TooLong {
        input: input_owned(),
    };
    // All digits here, so a parse failure is overflow: too long.
    let n: i64 = num.parse().map_err(|_| too_long())?;
    if n == 0 {
        return Err(DurationError::Zero {
            input: input_owned(),
        });
    }
    let secs = n.checked_mul(secs_per).ok_or_else(too_long)?;
    if secs > MAX.num_seconds() {
        return Err(too_long());
    }
    Ok(Duration::seconds(secs))
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
        for bad in ["", "d", "-1d", "1x", "1.5d", "10", "1 d"] {
            assert!(
                matches!(parse(bad), Err(DurationError::Syntax { .. })),
                "{bad}"
            );
        }
    }

    /// Issue 11 defect 9: `0s` and `99999999d` were told "expected a number and a unit".
    #[test]
    fn zero_and_too_long_say_so_with_the_maximum() {
        for zero in ["0s", "0d", "000h"] {
            let e = parse(zero).unwrap_err();
            assert!(matches!(e, DurationError::Zero { .. }), "{zero}");
            assert!(e.to_string().contains("it is zero"), "{e}");
        }
        for long in [
            "99999999d",
            "101y",
            "36501d",
            "99999999999999999999999s",
            "9223372036854775807w",
        ] {
            let e = parse(long).unwrap_err();
            assert!(matches!(e, DurationError::TooLong { .. }), "{long}");
            assert!(
                e.to_string().contains("the maximum is 100y (36500d)"),
                "{e}"
            );
        }
        assert_eq!(parse("100y").unwrap(), MAX);
        assert_eq!(parse("36500d").unwrap(), MAX);
        assert_eq!(parse("100001s").unwrap(), Duration::seconds(100_001));
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
