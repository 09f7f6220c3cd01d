//! Times: stored as Unix microseconds, written in the API's format in the configured zone.

use chrono::{DateTime, Datelike, FixedOffset, Offset, TimeZone, Timelike, Utc};
use std::str::FromStr;

/// A point in time as Unix microseconds: the one representation the store uses on both
/// backends (SQLite keeps nanoseconds, PostgreSQL microseconds; an integer is exact on both).
pub type Micros = i64;

/// Microseconds in a second.
pub const SECOND: Micros = 1_000_000;

/// The current time in microseconds.
pub fn now() -> Micros {
    Utc::now().timestamp_micros()
}

/// A `std::time::Duration` in microseconds, saturating.
pub fn micros(d: std::time::Duration) -> Micros {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The zone every time the API writes is given in: an IANA zone or a fixed offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A fixed offset such as `+01:00` (and `UTC`).
    Fixed(FixedOffset),
    /// An IANA zone such as `Europe/Prague`, with its daylight saving time.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// Coordinated Universal Time, the default.
    pub fn utc() -> Zone {
        Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset"))
    }

    /// Writes `t` as the contract's `YYYY-MM-DDTHH:MM:SS+HHMM` in this zone. Written digit
    /// by digit: chrono's `format` parses its pattern at every call, and a job writes
    /// several times (log lines, the `job:finished` body), which made it a tenth of a
    /// snapshot worker's time under `jobline bench`.
    pub fn format(&self, t: Micros) -> String {
        let utc = DateTime::<Utc>::from_timestamp_micros(t).unwrap_or_default();
        let local = match self {
            Zone::Fixed(off) => utc.with_timezone(off),
            Zone::Named(tz) => {
                utc.with_timezone(&tz.offset_from_utc_datetime(&utc.naive_utc()).fix())
            }
        };
        let year = local.year();
        if !(0..=9999).contains(&year) {
            return local.format("%Y-%m-%dT%H:%M:%S%z").to_string();
        }
        let offset = local.offset().local_minus_utc();
        let (sign, offset) = if offset < 0 {
            (b'-', -offset)
        } else {
            (b'+', offset)
        };
        let mut out = [0u8; 24];
        let mut put = |at: usize, value: u32, width: usize| {
            let mut v = value;
            for i in (0..width).rev() {
                out[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year as u32, 4);
        put(5, local.month(), 2);
        put(8, local.day(), 2);
        put(11, local.hour(), 2);
        put(14, local.minute(), 2);
        put(17, local.second(), 2);
        put(20, (offset / 3600) as u32, 2);
        put(22, (offset % 3600 / 60) as u32, 2);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, sign),
        ] {
            out[at] = c;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl FromStr for Zone {
    type Err = String;

    /// `UTC`/`Z`, an offset (`+01:00`, `+0100`, `-05:00`) or an IANA name.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::utc());
        }
        if s.starts_with('+') || s.starts_with('-') {
            let probe = format!("2000-01-01T00:00:00{s}");
            return DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%:z")
                .or_else(|_| DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%z"))
                .map(|d| Zone::Fixed(*d.offset()))
                .map_err(|_| format!("`{s}` is not an offset like +01:00"));
        }
        s.parse::<chrono_tz::Tz>()
            .map(Zone::Named)
            .map_err(|_| format!("`{s}` is neither an IANA time zone nor an offset"))
    }
}

/// Reads a time given in a query parameter: the API's own format (`+0100`) or RFC 3339
/// (`+01:00`, `Z`). A `+` that arrived unencoded in a query string decodes as a space;
/// that is put back, since no valid time contains a space before its offset.
pub fn parse_api_time(s: &str) -> Option<Micros> {
    let fixed = s.trim().replacen(' ', "+", 1);
    let s = fixed.as_str();
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.timestamp_micros())
}

/// `from_utc` helper for tests and callers that build times from calendar fields.
pub fn from_utc_ymd_hms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Micros {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .map(|t| t.timestamp_micros())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_the_contract_shape() {
        let t = from_utc_ymd_hms(2019, 1, 8, 14, 13, 39);
        assert_eq!(Zone::utc().format(t), "2019-01-08T14:13:39+0000");
        let prague: Zone = "Europe/Prague".parse().unwrap();
        assert_eq!(prague.format(t), "2019-01-08T15:13:39+0100");
        let summer = from_utc_ymd_hms(2019, 7, 8, 14, 13, 39);
        assert_eq!(prague.format(summer), "2019-07-08T16:13:39+0200");
        let fixed: Zone = "+01:00".parse().unwrap();
        assert_eq!(fixed.format(summer), "2019-07-08T15:13:39+0100");
        let west: Zone = "-05:30".parse().unwrap();
        assert_eq!(west.format(summer), "2019-07-08T08:43:39-0530");
        let new_york: Zone = "America/New_York".parse().unwrap();
        assert_eq!(new_york.format(t), "2019-01-08T09:13:39-0500");
        assert_eq!(Zone::utc().format(0), "1970-01-01T00:00:00+0000");
        let far = from_utc_ymd_hms(12019, 1, 8, 14, 13, 39);
        assert_eq!(Zone::utc().format(far), "+12019-01-08T14:13:39+0000");
        assert!("Mars/Olympus".parse::<Zone>().is_err());
        assert!("+25:00".parse::<Zone>().is_err());
    }

    #[test]
    fn parses_both_query_formats() {
        let t = from_utc_ymd_hms(2019, 1, 8, 14, 13, 39);
        assert_eq!(parse_api_time("2019-01-08T15:13:39+0100"), Some(t));
        assert_eq!(parse_api_time("2019-01-08T15:13:39+01:00"), Some(t));
        assert_eq!(parse_api_time("2019-01-08T14:13:39Z"), Some(t));
        assert_eq!(parse_api_time("2019-01-08T15:13:39 0100"), Some(t));
        assert_eq!(parse_api_time("2019-01-08"), None);
        assert_eq!(parse_api_time("yesterday"), None);
    }
}
