//! Every time flag of every binary is a [`Duration`] written with its unit (`100ms`, `1s`, `5m`).
//! A bare number is refused rather than guessed at: `--interval 1000` meant milliseconds in one
//! place and seconds in another, and a guess that is wrong by a factor of 1000 is worse than a
//! clear error.

use std::time::Duration;

/// Parses `250ms`, `1s`, `1.5s`, `5m`, `1h` (also `us`); made for clap's `value_parser`.
///
/// # Errors
/// A message that names the input and the accepted forms: for a bare number (`1000`), for an
/// unknown unit, and for a value too large for a `Duration`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 250ms, 1s, 5m"))?;
    let secs = match unit {
        "" => {
            return Err(format!(
                "{s:?} has no unit: write it as {s}ms or {s}s (units: us, ms, s, m, h)"
            ));
        }
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: the unit must be one of us, ms, s, m, h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn bare_numbers_and_garbage_are_refused_with_the_reason() {
        assert_eq!(
            parse_duration("1000"),
            Err(
                "\"1000\" has no unit: write it as 1000ms or 1000s (units: us, ms, s, m, h)".into()
            )
        );
        assert_eq!(
            parse_duration("5 parsecs"),
            Err("\"5 parsecs\": the unit must be one of us, ms, s, m, h".into())
        );
        assert_eq!(
            parse_duration("ms"),
            Err("\"ms\" is not a duration like 250ms, 1s, 5m".into())
        );
        assert_eq!(
            parse_duration("1e30h"),
            Err("\"1e30h\": the unit must be one of us, ms, s, m, h".into())
        );
        assert!(parse_duration("99999999999999999999999h").is_err());
    }
}
