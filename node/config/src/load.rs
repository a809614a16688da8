//! Validating every source, then merging them: defaults < file < env < CLI flags.
//!
//! Every source is validated in full before anything is merged, so one `load` reports every
//! problem of every source. Only validated, canonical values reach serde.

use std::collections::BTreeMap;
use std::net::IpAddr;

use toml::{Table, Value};

use crate::env::{env_var_for_key, key_for_env_var, CONFIG_FILE_ENV_VAR, ENV_PREFIX};
use crate::errors::{ConfigErrors, ConfigProblem};
use crate::model::Config;
use crate::schema::{self, Key, Kind, Suggestion, SuggestionReason, SCHEMA};
use crate::sources::{CliOverride, ConfigFile, ConfigSources, Source};

/// A valid configuration and how it came to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// Things that are allowed but probably not intended (e.g. unknown `RESTATE_*` variables).
    pub warnings: Vec<String>,
    /// For every value key (not tables), the source whose value won.
    pub provenance: BTreeMap<String, Source>,
}

impl Loaded {
    /// Where `key`'s value came from; `None` only for keys that do not exist.
    pub fn source_of(&self, key: &str) -> Option<&Source> {
        self.provenance.get(key)
    }
}

/// Validates and merges `sources`. Never reads the process environment or the filesystem.
///
/// # Panics
/// If a `CliOverride` names a key that does not exist or is a table: flags are defined by the
/// program, so that is a bug, not a user error.
pub fn load(sources: &ConfigSources) -> Result<Loaded, ConfigErrors> {
    let mut collector = Collector::default();
    if let Some(file) = &sources.file {
        collector.read_file(file);
    }
    for (name, value) in &sources.env {
        collector.read_env_var(name, value);
    }
    for cli_override in &sources.cli {
        collector.read_cli_override(cli_override);
    }
    collector.finish()
}

/// Validated settings and the problems and warnings found so far.
#[derive(Default)]
struct Collector {
    /// Winning canonical value per value key; a later source replaces an earlier one.
    settings: BTreeMap<&'static str, (Value, Source)>,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
}

impl Collector {
    fn set(&mut self, key: &'static Key, value: Value, source: &Source) {
        self.settings.insert(key.path, (value, source.clone()));
    }

    fn problem(&mut self, key: &str, source: &Source, message: String) {
        self.problems.push(ConfigProblem { key: key.to_owned(), source: source.clone(), message });
    }

    fn read_file(&mut self, file: &ConfigFile) {
        let source = Source::File(file.path.clone());
        match file.contents.parse::<Table>() {
            Ok(table) => self.read_file_table(&table, "", &source),
            Err(error) => self.problem("", &source, toml_syntax_message(&file.contents, &error)),
        }
    }

    fn read_file_table(&mut self, table: &Table, prefix: &str, source: &Source) {
        for (name, value) in table {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            // A quoted key containing '.' is one segment in TOML, so it never names a schema path.
            let known = if name.contains('.') { None } else { schema::lookup(&path) };
            match known {
                None => self.problem(&path, source, unknown_file_key_message(&path, value)),
                Some(key) => match (key.kind, value) {
                    (Kind::Table, Value::Table(inner)) => self.read_file_table(inner, key.path, source),
                    _ => match key.kind.check(value) {
                        Ok(canonical) => self.set(key, canonical, source),
                        Err(message) => self.problem(key.path, source, message),
                    },
                },
            }
        }
    }

    fn read_env_var(&mut self, name: &str, text: &str) {
        if !name.starts_with(ENV_PREFIX) || name == CONFIG_FILE_ENV_VAR {
            return;
        }
        let source = Source::Env(name.to_owned());
        let Some(path) = key_for_env_var(name) else {
            self.warnings.push(format!("ignoring environment variable {name}: it does not name a configuration key"));
            return;
        };
        match schema::lookup(&path) {
            Some(key) if key.kind != Kind::Table => {
                if let Err(mut message) = self.read_text(key, text, &source) {
                    if text.is_empty() {
                        message.push_str(&format!(" (the variable is set but empty; unset {name} to use the default)"));
                    }
                    self.problem(key.path, &source, message);
                }
            }
            Some(table) => {
                let example = schema::leaves()
                    .find(|leaf| leaf.path.starts_with(&format!("{}.", table.path)))
                    .map(|leaf| env_var_for_key(leaf.path))
                    .unwrap_or_default();
                self.warnings.push(format!(
                    "ignoring environment variable {name}: `{path}` is a table, not a value; set its keys \
                     individually, e.g. {example}"
                ));
            }
            None => {
                let hint = match schema::suggest(&path) {
                    Some(Suggestion { key, .. }) if schema::lookup(key).is_some_and(|k| k.kind != Kind::Table) => {
                        format!(" (did you mean {}?)", env_var_for_key(key))
                    }
                    _ => String::new(),
                };
                self.warnings
                    .push(format!("ignoring environment variable {name}: it does not name a configuration key{hint}"));
            }
        }
    }

    fn read_cli_override(&mut self, cli_override: &CliOverride) {
        let key = schema::lookup(&cli_override.key).filter(|key| key.kind != Kind::Table).unwrap_or_else(|| {
            panic!(
                "flag {} overrides `{}`, which is not a configuration value key",
                cli_override.flag, cli_override.key
            )
        });
        let source = Source::Cli(cli_override.flag.clone());
        if let Err(message) = self.read_text(key, &cli_override.value, &source) {
            self.problem(key.path, &source, message);
        }
    }

    /// Coerces env/CLI text by the key's kind, then validates it like a file value.
    fn read_text(&mut self, key: &'static Key, text: &str, source: &Source) -> Result<(), String> {
        let canonical = key.kind.value_from_text(text).and_then(|value| key.kind.check(&value))?;
        self.set(key, canonical, source);
        Ok(())
    }

    fn finish(self) -> Result<Loaded, ConfigErrors> {
        if !self.problems.is_empty() {
            return Err(ConfigErrors(self.problems));
        }
        let mut root = Table::new();
        for (path, (value, _)) in &self.settings {
            insert_at_path(&mut root, path, value.clone());
        }
        let config: Config = Value::Table(root).try_into().map_err(|error| {
            ConfigErrors(vec![ConfigProblem {
                key: String::new(),
                source: Source::Default,
                message: format!("bug: the validated configuration does not deserialize: {error}"),
            }])
        })?;
        let provenance = schema::leaves()
            .map(|key| {
                let source = self.settings.get(key.path).map_or(Source::Default, |(_, source)| source.clone());
                (key.path.to_owned(), source)
            })
            .collect::<BTreeMap<String, Source>>();
        // Rules that involve two keys are checked on the typed result.
        let ms = &config.metadata_server;
        if ms.raft_heartbeat_tick >= ms.raft_election_tick {
            let source = provenance.get("metadata-server.raft-heartbeat-tick").cloned().unwrap_or(Source::Default);
            return Err(ConfigErrors(vec![ConfigProblem {
                key: "metadata-server.raft-heartbeat-tick".into(),
                source,
                message: format!(
                    "must be below `metadata-server.raft-election-tick` ({}), found {}; heartbeats must come several times per election timeout",
                    ms.raft_election_tick, ms.raft_heartbeat_tick
                ),
            }]));
        }
        let mut warnings = self.warnings;
        warnings.extend(unreachable_advertised_address_warning(&config));
        Ok(Loaded { config, warnings, provenance })
    }
}

fn insert_at_path(root: &mut Table, path: &str, value: Value) {
    let (parents, leaf) = match path.rsplit_once('.') {
        Some((parents, leaf)) => (Some(parents), leaf),
        None => (None, path),
    };
    let mut table = root;
    for segment in parents.into_iter().flat_map(|parents| parents.split('.')) {
        table = table
            .entry(segment)
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("schema tables only hold tables at table paths");
    }
    table.insert(leaf.to_owned(), value);
}

fn toml_syntax_message(contents: &str, error: &toml::de::Error) -> String {
    let detail = error.message().trim();
    match error.span() {
        Some(span) => {
            let (line, column) = line_and_column(contents, span.start);
            format!("TOML syntax error at line {line}, column {column}: {detail}")
        }
        None => format!("TOML syntax error: {detail}"),
    }
}

/// 1-based line and column (in chars) of byte `offset`.
fn line_and_column(contents: &str, offset: usize) -> (usize, usize) {
    let before = &contents[..offset.min(contents.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn unknown_file_key_message(path: &str, value: &Value) -> String {
    let what = if value.is_table() { "unknown table" } else { "unknown key" };
    match schema::suggest(path) {
        Some(Suggestion { key, reason: SuggestionReason::Spelling }) => format!("{what}; did you mean `{key}`?"),
        Some(Suggestion { key, reason: SuggestionReason::BelongsToOuterTable }) => {
            let destination = match key.rsplit_once('.') {
                Some((table, _)) => format!("into the [{table}] table"),
                None => "above the first [table] header".to_owned(),
            };
            format!(
                "{what}; did you mean `{key}`? In TOML, a key written after a [table] header belongs to \
                 that table; move it {destination}"
            )
        }
        None => match path.rsplit_once('.') {
            Some((table, _)) if schema::lookup(table).is_some() => {
                let siblings: Vec<&str> = SCHEMA
                    .iter()
                    .filter_map(|key| key.path.strip_prefix(table)?.strip_prefix('.'))
                    .filter(|rest| !rest.contains('.'))
                    .collect();
                format!("{what}; [{table}] accepts: {}", siblings.join(", "))
            }
            _ => what.to_owned(),
        },
    }
}

/// A node that advertises a loopback address in a cluster whose metadata servers are elsewhere
/// cannot be reached by the other nodes.
fn unreachable_advertised_address_warning(config: &Config) -> Option<String> {
    if config.advertised_address.is_some() {
        return None;
    }
    let bind_ip = config.bind_address.ip();
    if !(bind_ip.is_unspecified() || bind_ip.is_loopback()) {
        return None;
    }
    let has_remote_metadata_server = config.metadata_client.addresses.iter().any(|address| match address.host_str() {
        Some("localhost") | None => false,
        Some(host) => {
            !host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    });
    if !has_remote_metadata_server {
        return None;
    }
    let derived = config.advertised_address_for(config.bind_address);
    Some(format!(
        "advertised-address is not set, so this node tells other nodes to reach it at {derived}, which only \
         works on this machine; set advertised-address (or RESTATE_ADVERTISED_ADDRESS) to an address other \
         nodes can reach, e.g. http://{}:{}",
        config.node_name,
        config.bind_address.port()
    ))
}
