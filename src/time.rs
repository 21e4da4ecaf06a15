//! Times an operator types (`--from`, `--until`) and the dates archives are
//! partitioned by. Kafka timestamps are milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jiff::Timestamp;

use crate::exit::bad_input;

const ACCEPTED: &str = "RFC 3339 (2026-11-29T05:50:01.123Z, or with an offset like +01:00), \
a time relative to now (-1h, -30m, -2d, -90s, or now), or epoch milliseconds (@1795931367000)";

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The time since the Unix epoch now.
pub fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Parses a `--from`/`--until` TIME into epoch milliseconds.
pub fn parse(flag: &str, text: &str) -> Result<i64> {
    let text = text.trim();
    let parsed = if text == "now" {
        Some(now_ms())
    } else if let Some(ms) = text.strip_prefix('@') {
        ms.parse::<i64>().ok()
    } else if let Some(ago) = text.strip_prefix('-') {
        relative(ago).map(|ms| now_ms() - ms)
    } else {
        rfc3339(text)
    };
    parsed.ok_or_else(|| bad_input(format!("{flag} {text:?}: give {ACCEPTED}")))
}

/// Parses a DURATION (`90s`, `30m`, `1h`, `2d`, `1w`) into milliseconds.
pub fn parse_duration(flag: &str, text: &str) -> Result<i64> {
    relative(text.trim()).ok_or_else(|| {
        bad_input(format!(
            "{flag} {text:?}: give a number and a unit: 90s, 30m, 1h, 2d or 1w"
        ))
    })
}

/// `90s`, `30m`, `1h`, `2d`, `1w` as milliseconds.
fn relative(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let number: f64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        'w' => 7.0 * 86400.0,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then_some((number * seconds * 1000.0) as i64)
}

/// An RFC 3339 time with its offset (`Z` or `+01:00`; without one it
/// names no instant) as epoch milliseconds; finer fractions are truncated.
fn rfc3339(text: &str) -> Option<i64> {
    text.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}

/// Epoch milliseconds as a jiff timestamp: a broker's timestamp is any
/// i64, so one outside jiff's years -9999 to 9999 is clamped to them.
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The UTC date (`YYYY-MM-DD`) of epoch milliseconds.
pub fn utc_date(ms: i64) -> String {
    timestamp(ms).strftime("%Y-%m-%d").to_string()
}

/// Epoch milliseconds as RFC 3339 UTC, for messages.
pub fn rfc3339_utc(ms: i64) -> String {
    format!("{:.3}", timestamp(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form() {
        assert_eq!(parse("--from", "@1795931367000").unwrap(), 1795931367000);
        assert_eq!(parse("--from", "1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse("--from", "2026-11-29T05:50:01.123Z").unwrap(),
            1795931401123
        );
        assert_eq!(
            parse("--from", "2026-11-29T06:50:01.123+01:00").unwrap(),
            1795931401123
        );
        assert_eq!(
            parse("--from", "2026-11-29T05:50:01.5Z").unwrap(),
            1795931401500
        );
        let before = now_ms();
        let now = parse("--until", "now").unwrap();
        assert!(before <= now && now <= now_ms());
        let hour_ago = parse("--from", "-1h").unwrap();
        assert!((now_ms() - 3_600_000 - hour_ago).abs() < 5_000);
        assert!(parse("--from", "-2d").unwrap() < parse("--from", "-30m").unwrap());
    }

    #[test]
    fn bad_times_name_the_accepted_forms() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-29",
            "-1y",
            "@x",
            "2026-11-29T05:50:01",
            "2026-11-29T05:50:01-",
            "nowish",
        ] {
            let error = parse("--until", bad).unwrap_err().to_string();
            assert!(
                error.contains("RFC 3339") && error.contains("--until"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        // A hostile broker timestamp is clamped, never a panic.
        assert!(utc_date(i64::MAX).starts_with("9999-12-"));
        assert!(
            utc_date(i64::MIN).starts_with("-9999-"),
            "{}",
            utc_date(i64::MIN)
        );
        assert_eq!(utc_date(1795931401123), "2026-11-29");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(rfc3339_utc(1795931401123), "2026-11-29T05:50:01.123Z");
        for ms in [951_782_400_000i64, 4_107_542_400_000] {
            assert_eq!(parse("-x", &rfc3339_utc(ms)).unwrap(), ms);
        }
    }
}
