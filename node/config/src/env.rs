//! Mapping between `RESTATE_*` environment variable names and configuration key paths.
//!
//! `RESTATE_` + key, with `__` between nesting levels and `_` for `-`, in upper case:
//! `admin.query-engine.pgsql-bind-address` <-> `RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS`.
//! Reading accepts any letter case after the prefix.

/// Every configuration variable starts with this.
pub const ENV_PREFIX: &str = "RESTATE_";

/// Names the configuration file to read; it is not a configuration key.
pub const CONFIG_FILE_ENV_VAR: &str = "RESTATE_CONFIG";

/// The key path a `RESTATE_*` variable addresses, or `None` if `name` lacks the prefix or has
/// an empty nesting level (e.g. `RESTATE_`, `RESTATE_ADMIN____X`). Whether the key exists is
/// for the schema to say.
pub fn key_for_env_var(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    let segments: Vec<String> =
        rest.split("__").map(|segment| segment.to_ascii_lowercase().replace('_', "-")).collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    Some(segments.join("."))
}

/// The variable that sets `key` (a dotted kebab-case key path).
pub fn env_var_for_key(key: &str) -> String {
    let body: Vec<String> = key.split('.').map(|segment| segment.to_ascii_uppercase().replace('-', "_")).collect();
    format!("{ENV_PREFIX}{}", body.join("__"))
}

/// This process's `RESTATE_*` variables, in the order the OS lists them. Values that are not
/// valid UTF-8 are passed on lossily so that validation reports them rather than dropping them.
pub fn env_sources_from_process() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX).then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SCHEMA;

    #[test]
    fn maps_documented_names() {
        let cases = [
            ("RESTATE_NODE_NAME", "node-name"),
            ("RESTATE_METADATA_SERVER__TYPE", "metadata-server.type"),
            ("RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS", "admin.query-engine.pgsql-bind-address"),
            ("RESTATE_WORKER__SNAPSHOTS__DESTINATION", "worker.snapshots.destination"),
            ("RESTATE_METADATA_CLIENT__ADDRESSES", "metadata-client.addresses"),
            ("RESTATE_node_name", "node-name"),
        ];
        for (name, key) in cases {
            assert_eq!(key_for_env_var(name).as_deref(), Some(key), "{name}");
        }
        assert_eq!(key_for_env_var("RESTATE_"), None);
        assert_eq!(key_for_env_var("RESTATE_ADMIN__"), None);
        assert_eq!(key_for_env_var("HOME"), None);
    }

    #[test]
    fn every_key_round_trips_through_its_variable_name() {
        for key in SCHEMA {
            assert_eq!(key_for_env_var(&env_var_for_key(key.path)).as_deref(), Some(key.path));
        }
        assert_eq!(
            env_var_for_key("admin.query-engine.pgsql-bind-address"),
            "RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS"
        );
    }
}
