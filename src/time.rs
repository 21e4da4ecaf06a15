//! Times an operator types (`--from`, `--until`) and the dates archives are
//! partitioned by. Kafka timestamps are milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::exit::bad_input;

const ACCEPTED: &str = "RFC 3339 (2026-11-29T05:50:01.123Z, or with an offset like +01:00), \
a time relative to now (-1h, -30m, -2d, -90s), or epoch milliseconds (@1795931367000)";

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
    let parsed = if let Some(ms) = text.strip_prefix('@') {
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

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` as epoch milliseconds.
fn rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let s = text.get(from..from + n)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let fraction = text.get(start..at)?;
        if fraction.is_empty() {
            return None;
        }
        millis = format!("{fraction:0<3}")[..3].parse().ok()?;
    }
    let offset_minutes = match text.get(at..)? {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
            if zone.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The UTC date (`YYYY-MM-DD`) of epoch milliseconds.
pub fn utc_date(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Epoch milliseconds as RFC 3339 UTC, for messages.
pub fn rfc3339_utc(ms: i64) -> String {
    let rem = ms.rem_euclid(86_400_000);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        utc_date(ms),
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
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
        assert_eq!(utc_date(1795931401123), "2026-11-29");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(rfc3339_utc(1795931401123), "2026-11-29T05:50:01.123Z");
        for ms in [951_782_400_000i64, 4_107_542_400_000] {
            assert_eq!(parse("-x", &rfc3339_utc(ms)).unwrap(), ms);
        }
    }
}
