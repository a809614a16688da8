//! Durations as users write them: in config values (`"50ms"`, `"2s"`, `"1.5 s"`, `"10min"`)
//! and in request parameters (the same, or ISO 8601 `PT10S`, `PT1M30S`).

use std::time::Duration;

/// Parses "50ms", "2s", "1.5 s", "1m" into milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("cannot parse '{text}' as a duration like \"50ms\" or \"2s\""))?;
    let factor = match unit.trim() {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "" => {
            return Err(format!(
                "duration '{text}' needs a unit: ms, s, m, h or d (or give an integer of milliseconds)"
            ))
        }
        other => return Err(format!("unknown duration unit '{other}' in '{text}'; use ms, s, m, h or d")),
    };
    Ok((number * factor).round() as u64)
}

/// A duration as `parse_duration_ms` reads it, or an ISO 8601 time duration
/// (`PT1H2M3.5S`, `P1D`). Negative or unparseable input is an error saying what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Some(iso) = trimmed.strip_prefix('P').or_else(|| trimmed.strip_prefix('p')) {
        return parse_iso8601(iso)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("cannot parse '{text}' as an ISO 8601 duration like \"PT10S\" or \"PT1M30S\""));
    }
    parse_duration_ms(trimmed).map(Duration::from_millis)
}

/// Milliseconds of an ISO 8601 duration after its `P`: `[nD][T[nH][nM][nS]]`.
fn parse_iso8601(rest: &str) -> Option<u64> {
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut parts = 0;
    for (text, units) in [
        (days, &[('D', 86_400_000.0)][..]),
        (time.unwrap_or(""), &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)][..]),
    ] {
        let mut remaining = text;
        for (unit, factor) in units {
            if let Some(at) = remaining.find([*unit, unit.to_ascii_lowercase()]) {
                let number: f64 = remaining[..at].parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
                total += number * factor;
                parts += 1;
                remaining = &remaining[at + 1..];
            }
        }
        if !remaining.is_empty() {
            return None;
        }
    }
    (parts > 0 && (time.is_none() || time.is_some_and(|t| !t.is_empty()))).then_some(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humane_and_iso_durations_parse() {
        for (text, ms) in [
            ("10s", 10_000),
            ("500ms", 500),
            ("1.5m", 90_000),
            ("2h", 7_200_000),
            ("PT10S", 10_000),
            ("PT1M30S", 90_000),
            ("P1D", 86_400_000),
            ("PT0.5S", 500),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for (text, says) in [
            ("-1s", "cannot parse '-1s'"),
            ("abc", "cannot parse 'abc'"),
            ("10", "needs a unit"),
            ("10y", "unknown duration unit 'y'"),
            ("PT", "ISO 8601"),
            ("PTXS", "ISO 8601"),
            ("P-1D", "ISO 8601"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
