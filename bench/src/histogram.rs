//! Quantiles of a Prometheus histogram over an interval: read a node's `/metrics` before
//! and after a run, and estimate what the histogram saw in between.

/// Cumulative bucket counts of one histogram in a `/metrics` text: `(le, count)` pairs in
/// the order printed (ascending `le`, `+Inf` last). Empty when the histogram is absent.
pub fn buckets(metrics_text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    metrics_text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (labels, value) = rest.split_once("} ")?;
            let le = labels.split(',').find_map(|label| label.trim().strip_prefix("le=\""))?.trim_end_matches('"');
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, value.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile (0..=1) of what was observed between two readings of the same
/// histogram (`before` may be empty: nothing observed yet), interpolated linearly inside
/// the bucket it falls in (the last finite bound when it falls in `+Inf`). `None` when
/// nothing was observed in between.
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let earlier = before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, m)| *m);
            (*le, n - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, cumulative) in &counts {
        if *cumulative >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = cumulative - lower.1;
            let share = if in_bucket > 0.0 { (rank - lower.1) / in_bucket } else { 1.0 };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (*le, *cumulative);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x_seconds help\n\
        x_seconds_bucket{le=\"0.001\"} 10\n\
        x_seconds_bucket{le=\"0.002\"} 30\n\
        x_seconds_bucket{le=\"+Inf\"} 40\n\
        x_seconds_sum 1\n\
        y_seconds_bucket{le=\"0.001\"} 5\n";

    #[test]
    fn bucket_lines_of_the_named_histogram_only() {
        assert_eq!(buckets(TEXT, "x_seconds"), vec![(0.001, 10.0), (0.002, 30.0), (f64::INFINITY, 40.0)]);
        assert!(buckets(TEXT, "z_seconds").is_empty());
    }

    fn about(estimate: Option<f64>, expected: f64) -> bool {
        estimate.is_some_and(|e| (e - expected).abs() < 1e-12)
    }

    #[test]
    fn quantiles_count_only_what_was_observed_in_between() {
        let after = buckets(TEXT, "x_seconds");
        // All 40: the median (rank 20) is half way through the second bucket.
        assert!(about(quantile_between(&[], &after, 0.5), 0.0015));
        // Before: 10 in the first bucket. In between: 20 in the second, 10 above it.
        let before = vec![(0.001, 10.0), (0.002, 10.0), (f64::INFINITY, 10.0)];
        assert!(about(quantile_between(&before, &after, 0.0), 0.001));
        assert!(about(quantile_between(&before, &after, 0.5), 0.00175));
        assert!(about(quantile_between(&before, &after, 0.99), 0.002));
        assert_eq!(quantile_between(&after, &after, 0.5), None);
    }
}
