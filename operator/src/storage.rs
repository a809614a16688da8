//! Changes of `spec.storage` once the StatefulSet exists. Its volume claim template cannot
//! change in place, so the reconciler grows the claims themselves and re-creates the
//! StatefulSet around the running pods; what cannot change (a smaller size, another class)
//! is refused. Pure: the reconciler reads the StatefulSet and acts on the [`StorageChange`].

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::crd::StorageSpec;

/// What a round does about the volumes.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageChange {
    /// Same size and class (or no StatefulSet yet).
    None,
    /// Every claim grows from `from` to `to`; the StatefulSet is re-created with the new
    /// template (its pods are orphaned, not restarted, and adopted again).
    Grow { from: Quantity, to: Quantity },
    /// The spec asks for what volumes cannot do: `field`, and why, with what to do.
    Refused { field: &'static str, reason: String },
}

/// Bytes of a Kubernetes quantity (`10Gi`, `500M`, `1.5Gi`, `1e9`, `1000`), or `None` for
/// text that is not one. Sizes only: no negative values, no milli units.
pub fn quantity_bytes(quantity: &Quantity) -> Option<u128> {
    let text = quantity.0.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * multiplier).round() as u128)
}

/// The size and class of the StatefulSet's data volume template, if it has one.
pub fn current_storage(statefulset: &StatefulSet) -> Option<(Quantity, Option<String>)> {
    let template = statefulset.spec.as_ref()?.volume_claim_templates.as_ref()?.first()?;
    let spec = template.spec.as_ref()?;
    let size = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?.clone();
    Some((size, spec.storage_class_name.clone()))
}

/// What `wanted` means for volumes made as `current` (none: no StatefulSet yet).
pub fn plan_storage(current: Option<(Quantity, Option<String>)>, wanted: &StorageSpec) -> StorageChange {
    let Some((size, class)) = current else { return StorageChange::None };
    if wanted.storage_class_name.is_some() && wanted.storage_class_name != class {
        return StorageChange::Refused {
            field: "spec.storage.storageClassName",
            reason: format!(
                "the volumes were made with class {}; a claim cannot move to {}: set it back (moving a cluster to \
                 another class means a new cluster restored from a snapshot)",
                class.as_deref().unwrap_or("(the default)"),
                wanted.storage_class_name.as_deref().unwrap_or_default(),
            ),
        };
    }
    let Some(new_bytes) = quantity_bytes(&wanted.size) else {
        return StorageChange::Refused {
            field: "spec.storage.size",
            reason: format!("'{}' is not a size; write it like 10Gi or 500M", wanted.size.0),
        };
    };
    match quantity_bytes(&size) {
        Some(old_bytes) if new_bytes < old_bytes => StorageChange::Refused {
            field: "spec.storage.size",
            reason: format!(
                "volumes cannot shrink (from {} to {}): set it back to {} or more",
                size.0, wanted.size.0, size.0
            ),
        },
        Some(old_bytes) if new_bytes > old_bytes => StorageChange::Grow { from: size, to: wanted.size.clone() },
        _ => StorageChange::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity(text.to_owned())
    }

    fn spec(size: &str, class: Option<&str>) -> StorageSpec {
        StorageSpec { size: q(size), storage_class_name: class.map(str::to_owned), delete_claims_on_delete: false }
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity_bytes(&q("10Gi")), Some(10 << 30));
        assert_eq!(quantity_bytes(&q("1.5Gi")), Some(3 << 29));
        assert_eq!(quantity_bytes(&q("500M")), Some(500_000_000));
        assert_eq!(quantity_bytes(&q("1e9")), Some(1_000_000_000));
        assert_eq!(quantity_bytes(&q("1024")), Some(1024));
        for bad in ["", "ten", "10Gb", "-1Gi", "10 Gi"] {
            assert_eq!(quantity_bytes(&q(bad)), None, "{bad}");
        }
    }

    #[test]
    fn volumes_grow_but_neither_shrink_nor_change_class() {
        let current = || Some((q("1Gi"), Some("fast".to_owned())));
        assert_eq!(plan_storage(None, &spec("5Gi", None)), StorageChange::None, "no StatefulSet yet");
        assert_eq!(plan_storage(current(), &spec("1024Mi", None)), StorageChange::None, "same size");
        assert_eq!(plan_storage(current(), &spec("2Gi", None)), StorageChange::Grow { from: q("1Gi"), to: q("2Gi") });
        assert_eq!(
            plan_storage(current(), &spec("2Gi", Some("fast"))),
            StorageChange::Grow { from: q("1Gi"), to: q("2Gi") }
        );
        match plan_storage(current(), &spec("512Mi", None)) {
            StorageChange::Refused { field, reason } => {
                assert_eq!(field, "spec.storage.size");
                assert!(reason.contains("cannot shrink (from 1Gi to 512Mi)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match plan_storage(current(), &spec("1Gi", Some("slow"))) {
            StorageChange::Refused { field, reason } => {
                assert_eq!(field, "spec.storage.storageClassName");
                assert!(reason.contains("class fast") && reason.contains("to slow"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(plan_storage(current(), &spec("lots", None)), StorageChange::Refused { .. }));
    }
}
