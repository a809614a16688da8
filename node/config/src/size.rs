//! Human-readable byte sizes: `"6 GiB"`, `"512 MiB"`, `"1GB"`, `"1.5 GiB"` or a plain number of
//! bytes.
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024; decimal units (`K`/`KB`, `M`/`MB`,
//! `G`/`GB`, `T`/`TB`) are powers of 1000. Units are case-insensitive and may be separated from
//! the number by whitespace. Fractions are rounded down to whole bytes.

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

const EXAMPLES: &str = "expected e.g. \"512 MiB\", \"6 GiB\", \"1GB\" or a number of bytes";

/// Largest unit first, so `format_exact` picks the shortest exact form.
const BINARY_UNITS: [(&str, u64); 4] = [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)];

fn unit_multiplier(unit: &str) -> Option<u64> {
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => KIB,
        "m" | "mb" => 1_000_000,
        "mib" => MIB,
        "g" | "gb" => 1_000_000_000,
        "gib" => GIB,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => TIB,
        _ => return None,
    };
    Some(multiplier)
}

/// Parses a size; the error is a complete sentence fragment naming the input.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let cannot_parse = || format!("cannot parse '{text}' as a size; {EXAMPLES}");

    let number_len = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_len);
    let multiplier = unit_multiplier(unit.trim()).ok_or_else(cannot_parse)?;

    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(cannot_parse());
    }
    if !whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()) {
        return Err(cannot_parse());
    }
    let too_large = || format!("size '{text}' is too large");
    let whole_value: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    let mut bytes = whole_value.checked_mul(u128::from(multiplier)).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // Only as many fractional digits as can matter for whole bytes; beyond that they
        // would overflow the arithmetic without changing the result meaningfully.
        let digits = &fraction[..fraction.len().min(18)];
        let numerator: u128 = digits.parse().map_err(|_| cannot_parse())?;
        let denominator = 10u128.pow(digits.len() as u32);
        bytes += numerator * u128::from(multiplier) / denominator;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// The exact binary-unit form (`"6 GiB"`), or `None` when no unit divides `bytes` evenly.
pub fn format_exact(bytes: u64) -> Option<String> {
    if bytes == 0 {
        return None;
    }
    BINARY_UNITS
        .iter()
        .find(|(_, unit)| bytes.is_multiple_of(*unit))
        .map(|(name, unit)| format!("{} {name}", bytes / unit))
}

/// A short, possibly rounded form for messages: `"1 GiB"`, `"15.5 MiB"`, `"100 bytes"`.
pub fn format_approx(bytes: u64) -> String {
    if let Some(exact) = format_exact(bytes) {
        return exact;
    }
    match BINARY_UNITS.iter().find(|(_, unit)| bytes >= *unit) {
        Some((name, unit)) => format!("{:.1} {name}", bytes as f64 / *unit as f64),
        None => format!("{bytes} bytes"),
    }
}

/// Serde adapter for a `u64` byte count: serializes as `"N GiB"`-style text when exact (else
/// an integer) and deserializes from either text or a non-negative integer.
pub(crate) mod human_bytes {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        match super::format_exact(*bytes) {
            Some(text) => serializer.serialize_str(&text),
            None => serializer.serialize_u64(*bytes),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"1 GiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("a size cannot be negative, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                super::parse_size(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_size("6 GiB").unwrap(), 6 * GIB);
        assert_eq!(parse_size("512 MiB").unwrap(), 512 * MIB);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("1073741824").unwrap(), GIB);
        assert_eq!(parse_size(" 2 gib ").unwrap(), 2 * GIB);
        assert_eq!(parse_size("1.5 GiB").unwrap(), GIB + GIB / 2);
        assert_eq!(parse_size("64KiB").unwrap(), 64 * KIB);
        assert_eq!(parse_size("100 B").unwrap(), 100);
    }

    #[test]
    fn rejects_nonsense_with_examples() {
        for bad in ["", "lots", "GiB", "1 GiBs", "-1 GiB", "1.2.3 MiB", "1 2 MiB"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("512 MiB"), "{bad:?}: {err}");
        }
        assert!(parse_size("99999999999 TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn formats_exact_binary_units_only() {
        assert_eq!(format_exact(GIB).as_deref(), Some("1 GiB"));
        assert_eq!(format_exact(1536 * MIB).as_deref(), Some("1536 MiB"));
        assert_eq!(format_exact(1_000_000_000), None);
        assert_eq!(format_approx(16 * MIB - 1), "16.0 MiB");
        assert_eq!(format_approx(10), "10 bytes");
    }
}
