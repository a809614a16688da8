//! Pure LSN arithmetic of a virtual log's chain of segments.
//!
//! A chain is a non-empty list of segments ordered by non-decreasing base LSN. Segment
//! `i` covers the virtual LSNs `[base_i, base_{i+1} - 1]` (empty when both bases are
//! equal: a segment sealed before it got any record); the last segment, the tail, covers
//! `[base_last, ∞)`. A segment's loglet numbers its records from `Lsn(1)`, so
//! `virtual = base + (loglet - 1)`; loglet `Lsn(0)` ("before the first record") maps to
//! `base - 1`, which is why a loglet's trim point or last LSN translates like any LSN.

use restate_metadata::objects::Segment;
use restate_types::Lsn;

/// The virtual LSN of `loglet_lsn` in a segment starting at `base`; `None` on overflow
/// or for the invalid base `Lsn(0)`.
pub fn to_virtual(base: Lsn, loglet_lsn: Lsn) -> Option<Lsn> {
    base.0.checked_sub(1)?.checked_add(loglet_lsn.0).map(Lsn)
}

/// The loglet LSN of `virtual_lsn` in a segment starting at `base`; `Lsn(0)` for
/// `base - 1`, `None` below that (the LSN lies before the segment).
pub fn to_loglet(base: Lsn, virtual_lsn: Lsn) -> Option<Lsn> {
    virtual_lsn.0.checked_add(1)?.checked_sub(base.0).map(Lsn)
}

/// The last virtual LSN segment `index` covers, or `None` for the tail (unbounded).
/// Equals `base - 1` for an empty segment.
pub fn segment_end(segments: &[Segment], index: usize) -> Option<Lsn> {
    segments.get(index + 1).map(|next| next.base_lsn.prev())
}

/// Whether segment `index` covers no LSN at all.
pub fn is_empty_segment(segments: &[Segment], index: usize) -> bool {
    segment_end(segments, index).is_some_and(|end| end < segments[index].base_lsn)
}

/// The index of the segment that holds `lsn`: the last one whose base is at or below it
/// (empty segments are thereby skipped). An LSN before the whole chain maps to the first
/// segment. `segments` must be non-empty.
pub fn segment_for(segments: &[Segment], lsn: Lsn) -> usize {
    segments.partition_point(|s| s.base_lsn <= lsn).saturating_sub(1)
}

/// Checks the shape every other function here relies on; the error says what is wrong.
pub fn check_chain(segments: &[Segment]) -> Result<(), String> {
    let Some(first) = segments.first() else {
        return Err("the chain has no segments".to_owned());
    };
    if first.base_lsn < Lsn::OLDEST {
        return Err(format!("its first segment (loglet {}) starts at LSN 0; LSNs start at 1", first.loglet_id));
    }
    for pair in segments.windows(2) {
        if pair[1].base_lsn < pair[0].base_lsn {
            return Err(format!(
                "segment of loglet {} starts at LSN {}, before its predecessor (loglet {}) at LSN {}",
                pair[1].loglet_id, pair[1].base_lsn, pair[0].loglet_id, pair[0].base_lsn
            ));
        }
    }
    Ok(())
}

/// Which loglets a trim of the virtual log from trim point `current` to `target` touches,
/// and to which loglet LSN: `(segment index, loglet trim point)` in chain order. Only
/// non-empty segments with records in `(current, target]` appear; a segment wholly at or
/// below `target` is trimmed to its last LSN, the one holding `target` up to it.
pub fn trim_plan(segments: &[Segment], current: Lsn, target: Lsn) -> Vec<(usize, Lsn)> {
    let mut plan = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        if segment.base_lsn > target {
            break;
        }
        let end = segment_end(segments, index);
        if is_empty_segment(segments, index) || end.is_some_and(|end| end <= current) {
            continue;
        }
        let upto = end.map_or(target, |end| end.min(target));
        if let Some(loglet_lsn) = to_loglet(segment.base_lsn, upto) {
            plan.push((index, loglet_lsn));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use restate_types::{LogProviderKind, LogletId};

    use super::*;

    fn chain(bases: &[u64]) -> Vec<Segment> {
        bases
            .iter()
            .enumerate()
            .map(|(i, base)| Segment {
                base_lsn: Lsn(*base),
                kind: LogProviderKind::Local,
                loglet_id: LogletId(i as u64 + 1),
                replication: 1,
                nodeset: Vec::new(),
                joined: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn translation_round_trips_and_maps_zero_to_before_the_segment() {
        assert_eq!(to_virtual(Lsn(1), Lsn(5)), Some(Lsn(5)));
        assert_eq!(to_virtual(Lsn(6), Lsn(1)), Some(Lsn(6)));
        assert_eq!(to_virtual(Lsn(6), Lsn(5)), Some(Lsn(10)));
        assert_eq!(to_virtual(Lsn(6), Lsn(0)), Some(Lsn(5)));
        assert_eq!(to_loglet(Lsn(6), Lsn(10)), Some(Lsn(5)));
        assert_eq!(to_loglet(Lsn(6), Lsn(5)), Some(Lsn(0)));
        assert_eq!(to_loglet(Lsn(6), Lsn(4)), None);
        for base in [1, 2, 6, 1000] {
            for lsn in [0, 1, 7, 99] {
                let virt = to_virtual(Lsn(base), Lsn(lsn)).unwrap();
                assert_eq!(to_loglet(Lsn(base), virt), Some(Lsn(lsn)));
            }
        }
        assert_eq!(to_virtual(Lsn(0), Lsn(1)), None);
        assert_eq!(to_virtual(Lsn(u64::MAX), Lsn(2)), None);
        assert_eq!(to_loglet(Lsn(1), Lsn(u64::MAX)), None);
    }

    #[test]
    fn segment_ends_are_the_next_base_minus_one() {
        let segments = chain(&[1, 6, 6, 11]);
        assert_eq!(segment_end(&segments, 0), Some(Lsn(5)));
        assert_eq!(segment_end(&segments, 1), Some(Lsn(5)));
        assert_eq!(segment_end(&segments, 2), Some(Lsn(10)));
        assert_eq!(segment_end(&segments, 3), None);
        assert!(!is_empty_segment(&segments, 0));
        assert!(is_empty_segment(&segments, 1));
        assert!(!is_empty_segment(&segments, 3));
    }

    #[test]
    fn the_segment_for_an_lsn_skips_empty_segments() {
        let segments = chain(&[1, 6, 6, 11]);
        assert_eq!(segment_for(&segments, Lsn(0)), 0);
        assert_eq!(segment_for(&segments, Lsn(1)), 0);
        assert_eq!(segment_for(&segments, Lsn(5)), 0);
        assert_eq!(segment_for(&segments, Lsn(6)), 2);
        assert_eq!(segment_for(&segments, Lsn(10)), 2);
        assert_eq!(segment_for(&segments, Lsn(11)), 3);
        assert_eq!(segment_for(&segments, Lsn(u64::MAX)), 3);
        // A chain that starts later: earlier LSNs map to its first segment.
        assert_eq!(segment_for(&chain(&[5]), Lsn(2)), 0);
    }

    #[test]
    fn chains_must_start_at_one_or_later_and_never_go_back() {
        assert!(check_chain(&chain(&[1, 6, 6, 11])).is_ok());
        assert!(check_chain(&[]).unwrap_err().contains("no segments"));
        assert!(check_chain(&chain(&[0])).unwrap_err().contains("LSN 0"));
        let err = check_chain(&chain(&[1, 8, 6])).unwrap_err();
        assert!(err.contains("loglet 3") && err.contains("LSN 6") && err.contains("LSN 8"), "{err}");
    }

    #[test]
    fn a_trim_touches_every_segment_up_to_the_target_once() {
        let segments = chain(&[1, 6, 6, 11]);
        // Into the third segment: the first wholly, the empty one not at all.
        assert_eq!(trim_plan(&segments, Lsn(0), Lsn(7)), vec![(0, Lsn(5)), (2, Lsn(2))]);
        // Exactly the end of the first segment.
        assert_eq!(trim_plan(&segments, Lsn(0), Lsn(5)), vec![(0, Lsn(5))]);
        // Segments already trimmed wholly are left alone.
        assert_eq!(trim_plan(&segments, Lsn(5), Lsn(7)), vec![(2, Lsn(2))]);
        assert_eq!(trim_plan(&segments, Lsn(7), Lsn(12)), vec![(2, Lsn(5)), (3, Lsn(2))]);
        // Nothing between current and target touches the tail only.
        assert_eq!(trim_plan(&segments, Lsn(10), Lsn(11)), vec![(3, Lsn(1))]);
        assert_eq!(trim_plan(&chain(&[1]), Lsn(0), Lsn(3)), vec![(0, Lsn(3))]);
    }
}
