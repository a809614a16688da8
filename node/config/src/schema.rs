//! The one table of every configuration key and what its value must look like.
//!
//! Validation turns a raw TOML value (from the file, or coerced from env/CLI text) into the
//! canonical TOML value that `Config`'s serde deserialization accepts, or into a message
//! naming what was expected and what was found.

use crate::duration::parse_duration_ms;
use std::collections::BTreeSet;
use std::net::SocketAddr;

use restate_types::{Location, ReplicationProperty, Role, MAX_REPLICATION};
use toml::Value;
use url::Url;

use crate::model::{is_name_char, SnapshotDestination};
use crate::size::{self, MIB};

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A `[table]` of further keys; never a value itself.
    Table,
    /// Non-empty, only `[A-Za-z0-9._-]`, not `.`/`..` (used as a directory name).
    Name,
    /// Any string but the empty one.
    NonEmptyString,
    /// A filesystem path, non-empty.
    Path,
    /// Any string.
    String,
    /// Any string; shown as `***` by `Config::to_toml`.
    Secret,
    Bool,
    /// A whole number within `min..=max`.
    Integer {
        min: u64,
        max: u64,
    },
    /// `ip:port`; `example` is shown in messages.
    SocketAddr {
        example: &'static str,
    },
    /// An http(s) URL with a host; `explicit_port` forbids relying on the scheme's default.
    Url {
        explicit_port: bool,
    },
    /// A list of http(s) URLs with hosts.
    UrlList,
    /// A non-empty list of distinct role names.
    RoleList,
    /// A byte size (text with unit or integer) of at least `min` bytes.
    Size {
        min: u64,
    },
    /// One of the given strings.
    Enum(&'static [&'static str]),
    SnapshotDestination,
    /// A duration like "50ms", "2s", "1.5s" or an integer of milliseconds, within
    /// `min_ms..=max_ms`; canonical form: integer milliseconds.
    DurationMs {
        min_ms: u64,
        max_ms: u64,
    },
    /// A growth factor: a number (integer or decimal) from 1 to 10; canonical form: float.
    Factor,
    /// A replication property: a copy count (integer 1 to 128) or Restate's form
    /// `"{zone: 2, node: 3}"`; canonical form: an integer when plain, else the text.
    Replication,
    /// `"region"` or `"region.zone"` (restate_types::Location).
    Location,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// Dotted kebab-case path, e.g. `admin.query-engine.pgsql-bind-address`.
    pub path: &'static str,
    pub kind: Kind,
}

const fn key(path: &'static str, kind: Kind) -> Key {
    Key { path, kind }
}

pub(crate) const PROVIDER_KINDS: &[&str] = &["local", "replicated"];
pub(crate) const METADATA_SERVER_KINDS: &[&str] = &["local", "replicated"];
pub(crate) const LOG_FORMATS: &[&str] = &["pretty", "json"];
pub(crate) const ON_MAX_ATTEMPTS: &[&str] = &["pause", "kill"];

/// Largest value a TOML integer (i64) can hold.
const TOML_INT_MAX: u64 = i64::MAX as u64;

/// Every key, tables before their members.
pub(crate) const SCHEMA: &[Key] = &[
    key("node-name", Kind::Name),
    key("cluster-name", Kind::Name),
    key("advertised-address", Kind::Url { explicit_port: true }),
    key("auto-provision", Kind::Bool),
    key("default-replication", Kind::Replication),
    key("location", Kind::Location),
    key("location-file", Kind::Path),
    key("default-num-partitions", Kind::Integer { min: 1, max: 4096 }),
    key("roles", Kind::RoleList),
    key("base-dir", Kind::Path),
    key("bind-address", Kind::SocketAddr { example: "0.0.0.0:5122" }),
    key("rocksdb-total-memory-size", Kind::Size { min: 16 * MIB }),
    key("log-filter", Kind::NonEmptyString),
    key("log-format", Kind::Enum(LOG_FORMATS)),
    key("request-identity-private-key-pem-file", Kind::Path),
    key("bifrost", Kind::Table),
    key("bifrost.default-provider", Kind::Enum(PROVIDER_KINDS)),
    key("metadata-server", Kind::Table),
    key("metadata-server.type", Kind::Enum(METADATA_SERVER_KINDS)),
    key("metadata-server.auto-join", Kind::Bool),
    key("metadata-server.raft-tick-interval", Kind::DurationMs { min_ms: 1, max_ms: 10_000 }),
    key("metadata-server.raft-election-tick", Kind::Integer { min: 2, max: 1000 }),
    key("metadata-server.raft-heartbeat-tick", Kind::Integer { min: 1, max: 100 }),
    key("metadata-client", Kind::Table),
    key("metadata-client.addresses", Kind::UrlList),
    key("admin", Kind::Table),
    key("admin.bind-address", Kind::SocketAddr { example: "0.0.0.0:9070" }),
    key("admin.log-server-repair-grace-period", Kind::DurationMs { min_ms: 100, max_ms: 7 * 24 * 3_600_000 }),
    key("admin.query-engine", Kind::Table),
    key("admin.query-engine.pgsql-bind-address", Kind::SocketAddr { example: "0.0.0.0:9071" }),
    key("admin.query-engine.max-rows", Kind::Integer { min: 1, max: 100_000_000 }),
    key("admin.query-engine.max-memory", Kind::Size { min: 16 * MIB }),
    key("ingress", Kind::Table),
    key("ingress.bind-address", Kind::SocketAddr { example: "0.0.0.0:8080" }),
    key("ingress.request-body-size-limit", Kind::Size { min: 1024 }),
    key("worker", Kind::Table),
    key("worker.idempotency-retention", Kind::DurationMs { min_ms: 1_000, max_ms: 365 * 24 * 3_600_000 }),
    key("worker.workflow-completion-retention", Kind::DurationMs { min_ms: 1_000, max_ms: 365 * 24 * 3_600_000 }),
    key("worker.invoker", Kind::Table),
    key("worker.invoker.inactivity-timeout", Kind::DurationMs { min_ms: 100, max_ms: 24 * 3_600_000 }),
    key("worker.invoker.abort-timeout", Kind::DurationMs { min_ms: 100, max_ms: 7 * 24 * 3_600_000 }),
    key("worker.snapshots", Kind::Table),
    key("worker.snapshots.destination", Kind::SnapshotDestination),
    key("worker.snapshots.snapshot-interval-num-records", Kind::Integer { min: 1, max: TOML_INT_MAX }),
    key("worker.snapshots.aws-region", Kind::String),
    key("worker.snapshots.aws-endpoint-url", Kind::Url { explicit_port: false }),
    key("worker.snapshots.aws-access-key-id", Kind::String),
    key("worker.snapshots.aws-secret-access-key", Kind::Secret),
    key("worker.snapshots.aws-session-token", Kind::Secret),
    key("worker.snapshots.aws-profile", Kind::String),
    key("worker.snapshots.aws-allow-http", Kind::Bool),
    key("invocation", Kind::Table),
    key("invocation.default-retry-policy", Kind::Table),
    key("invocation.default-retry-policy.initial-interval", Kind::DurationMs { min_ms: 1, max_ms: 24 * 3_600_000 }),
    key("invocation.default-retry-policy.exponentiation-factor", Kind::Factor),
    key("invocation.default-retry-policy.max-interval", Kind::DurationMs { min_ms: 1, max_ms: 24 * 3_600_000 }),
    key("invocation.default-retry-policy.max-attempts", Kind::Integer { min: 1, max: u32::MAX as u64 }),
    key("invocation.default-retry-policy.on-max-attempts", Kind::Enum(ON_MAX_ATTEMPTS)),
    key("networking", Kind::Table),
    key("networking.cluster-secret-file", Kind::Path),
    key("networking.tls-cert-file", Kind::Path),
    key("networking.tls-key-file", Kind::Path),
    key("networking.tls-ca-file", Kind::Path),
    key("networking.insecure", Kind::Bool),
    key("networking.request-header-timeout", Kind::DurationMs { min_ms: 100, max_ms: 3_600_000 }),
    key("networking.max-connections", Kind::Integer { min: 16, max: 1_000_000 }),
];

pub(crate) fn lookup(path: &str) -> Option<&'static Key> {
    SCHEMA.iter().find(|key| key.path == path)
}

/// Keys that hold values (everything but tables).
pub(crate) fn leaves() -> impl Iterator<Item = &'static Key> {
    SCHEMA.iter().filter(|key| key.kind != Kind::Table)
}

impl Kind {
    /// What a value of this kind looks like, as the object of "expected ...".
    pub(crate) fn expected(&self) -> String {
        match self {
            Kind::Table => "a table".to_owned(),
            Kind::Name => "a name (letters, digits, '.', '_' and '-')".to_owned(),
            Kind::NonEmptyString | Kind::String | Kind::Secret => "a string".to_owned(),
            Kind::Path => "a path string".to_owned(),
            Kind::Bool => "a boolean (true or false)".to_owned(),
            Kind::Integer { .. } => "an integer".to_owned(),
            Kind::SocketAddr { example } => format!("a socket address string like \"{example}\""),
            Kind::Url { .. } => "a URL string like \"http://node1:5122\"".to_owned(),
            Kind::UrlList => "a list of URLs like [\"http://node1:5122\", \"http://node2:5122\"]".to_owned(),
            Kind::RoleList => "a list of roles like [\"worker\", \"admin\"]".to_owned(),
            Kind::Size { .. } => "a size like \"1 GiB\" or an integer number of bytes".to_owned(),
            Kind::DurationMs { .. } => {
                "a duration like \"50ms\", \"2s\" or \"24h\", or an integer of milliseconds".to_owned()
            }
            Kind::Enum(values) => format!("one of {}", quoted_list(values)),
            Kind::Factor => "a number from 1 to 10, like 2.0".to_owned(),
            Kind::Replication => "a copy count like 2 or a property like \"{zone: 2, node: 3}\"".to_owned(),
            Kind::Location => "a location string like \"region\" or \"region.zone\"".to_owned(),
            Kind::SnapshotDestination => {
                "a destination string like \"s3://bucket/prefix\" or \"file:///absolute/path\"".to_owned()
            }
        }
    }

    /// Turns text from an environment variable or a CLI flag into the TOML value the file
    /// would have held: booleans and integers are parsed, lists are JSON, everything else
    /// stays a string. The result still has to pass `check`.
    pub(crate) fn value_from_text(&self, text: &str) -> Result<Value, String> {
        match self {
            Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Boolean(true)),
                "false" => Ok(Value::Boolean(false)),
                _ => Err(self.mismatch(&Value::String(text.to_owned()))),
            },
            Kind::Integer { .. } | Kind::DurationMs { .. } | Kind::Replication
                if text.trim().parse::<i64>().is_ok() =>
            {
                text.trim()
                    .parse::<i64>()
                    .map(Value::Integer)
                    .map_err(|_| self.mismatch(&Value::String(text.to_owned())))
            }
            Kind::UrlList | Kind::RoleList => json_list(text, self),
            Kind::Factor => {
                text.trim().parse::<f64>().map(Value::Float).map_err(|_| self.mismatch(&Value::String(text.to_owned())))
            }
            Kind::Table => unreachable!("tables have no text form"),
            _ => Ok(Value::String(text.to_owned())),
        }
    }

    /// Validates `value` and returns its canonical form.
    pub(crate) fn check(&self, value: &Value) -> Result<Value, String> {
        match self {
            Kind::Table => match value {
                Value::Table(_) => Ok(value.clone()),
                other => Err(self.mismatch(other)),
            },
            Kind::Name => {
                let text = self.string(value)?;
                check_name(text)?;
                Ok(value.clone())
            }
            Kind::NonEmptyString | Kind::Path => {
                let text = self.string(value)?;
                if text.trim().is_empty() {
                    return Err("must not be empty".to_owned());
                }
                Ok(value.clone())
            }
            Kind::String | Kind::Secret | Kind::SnapshotDestination | Kind::Enum(_) => {
                let text = self.string(value)?;
                match self {
                    Kind::SnapshotDestination => {
                        text.parse::<SnapshotDestination>().map_err(|e| e.to_string())?;
                    }
                    Kind::Enum(values) if !values.contains(&text) => {
                        return Err(format!("unknown value '{text}'; expected one of {}", quoted_list(values)));
                    }
                    _ => {}
                }
                Ok(value.clone())
            }
            Kind::Bool => match value {
                Value::Boolean(_) => Ok(value.clone()),
                other => Err(self.mismatch(other)),
            },
            Kind::Integer { min, max } => {
                let Value::Integer(number) = value else {
                    return Err(self.mismatch(value));
                };
                if *number < 0 || (*number as u64) < *min || (*number as u64) > *max {
                    return Err(if *max >= TOML_INT_MAX {
                        format!("must be at least {min}, found {number}")
                    } else {
                        format!("must be between {min} and {max}, found {number}")
                    });
                }
                Ok(value.clone())
            }
            Kind::SocketAddr { example } => {
                check_socket_addr(self.string(value)?, example)?;
                Ok(value.clone())
            }
            Kind::Url { explicit_port } => {
                check_url(self.string(value)?, *explicit_port)?;
                Ok(value.clone())
            }
            Kind::UrlList => {
                let entries = self.list(value)?;
                let mut problems = Vec::new();
                for (position, entry) in entries.iter().enumerate() {
                    let result = match entry {
                        Value::String(text) => check_url(text, false).map(drop),
                        other => Err(format!("expected a URL string, found {}", describe(other))),
                    };
                    if let Err(problem) = result {
                        problems.push(format!("entry {}: {problem}", position + 1));
                    }
                }
                if problems.is_empty() {
                    Ok(value.clone())
                } else {
                    Err(problems.join("; "))
                }
            }
            Kind::RoleList => check_roles(self.list(value)?, self).map(|_| value.clone()),
            Kind::DurationMs { min_ms, max_ms } => {
                let ms = match value {
                    Value::String(text) => parse_duration_ms(text)?,
                    Value::Integer(number) => {
                        u64::try_from(*number).map_err(|_| format!("a duration cannot be negative, found {number}"))?
                    }
                    other => return Err(self.mismatch(other)),
                };
                if ms < *min_ms || ms > *max_ms {
                    return Err(format!("must be between {min_ms}ms and {max_ms}ms, found {ms}ms"));
                }
                Ok(Value::Integer(ms as i64))
            }
            Kind::Replication => {
                let property: ReplicationProperty = match value {
                    Value::Integer(number) if !(1..=i64::from(MAX_REPLICATION)).contains(number) => {
                        return Err(format!("must be between 1 and {MAX_REPLICATION}, found {number}"));
                    }
                    Value::Integer(number) => ReplicationProperty::nodes(*number as u32),
                    Value::String(text) => text.parse().map_err(|e: restate_types::ParseError| e.expected)?,
                    other => return Err(self.mismatch(other)),
                };
                Ok(if property.is_count() {
                    Value::Integer(i64::from(property.node))
                } else {
                    Value::String(property.to_string())
                })
            }
            Kind::Location => {
                let text = self.string(value)?;
                text.parse::<Location>().map_err(|e| e.expected)?;
                Ok(value.clone())
            }
            Kind::Factor => {
                let factor = match value {
                    Value::Float(f) => *f,
                    Value::Integer(i) => *i as f64,
                    other => return Err(self.mismatch(other)),
                };
                if !(1.0..=10.0).contains(&factor) {
                    return Err(format!("must be from 1 to 10, found {factor}"));
                }
                Ok(Value::Float(factor))
            }
            Kind::Size { min } => {
                let bytes = match value {
                    Value::String(text) => size::parse_size(text)?,
                    Value::Integer(number) => {
                        u64::try_from(*number).map_err(|_| format!("a size cannot be negative, found {number}"))?
                    }
                    other => return Err(self.mismatch(other)),
                };
                if bytes < *min {
                    return Err(format!(
                        "must be at least {}, found {bytes} bytes ({})",
                        size::format_approx(*min),
                        size::format_approx(bytes)
                    ));
                }
                let canonical = i64::try_from(bytes).map_err(|_| format!("size {bytes} is too large"))?;
                Ok(Value::Integer(canonical))
            }
        }
    }

    fn mismatch(&self, found: &Value) -> String {
        if *self == Kind::Secret {
            // Never the value of a secret key, not even a mistyped one.
            return format!("expected {}, found a TOML {}", self.expected(), found.type_str());
        }
        format!("expected {}, found {}", self.expected(), describe(found))
    }

    fn string<'v>(&self, value: &'v Value) -> Result<&'v str, String> {
        value.as_str().ok_or_else(|| self.mismatch(value))
    }

    fn list<'v>(&self, value: &'v Value) -> Result<&'v [Value], String> {
        value.as_array().map(Vec::as_slice).ok_or_else(|| self.mismatch(value))
    }
}

/// A value as a message shows it: its TOML type and, for scalars, the value itself.
pub(crate) fn describe(value: &Value) -> String {
    const MAX_SHOWN: usize = 60;
    let shown = match value {
        Value::String(text) if text.chars().count() > MAX_SHOWN => {
            let cut: String = text.chars().take(MAX_SHOWN).collect();
            return format!("string {:?}...", cut);
        }
        Value::String(text) => format!("{text:?}"),
        Value::Integer(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::Boolean(flag) => flag.to_string(),
        Value::Datetime(datetime) => datetime.to_string(),
        Value::Array(_) => return "a list".to_owned(),
        Value::Table(_) => return "a table".to_owned(),
    };
    format!("{} {shown}", value.type_str())
}

fn quoted_list(values: &[&str]) -> String {
    values.iter().map(|value| format!("\"{value}\"")).collect::<Vec<_>>().join(", ")
}

fn json_list(text: &str, kind: &Kind) -> Result<Value, String> {
    let example = match kind {
        Kind::RoleList => "[\"worker\",\"admin\"]",
        _ => "[\"http://node1:5122\",\"http://node2:5122\"]",
    };
    let not_a_list = |detail: String| format!("expected a JSON list like {example}, {detail}");
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| not_a_list(format!("cannot parse {text:?} as JSON ({e})")))?;
    let serde_json::Value::Array(entries) = parsed else {
        return Err(not_a_list(format!("found {text:?}")));
    };
    entries
        .into_iter()
        .map(|entry| match entry {
            serde_json::Value::String(s) => Ok(Value::String(s)),
            serde_json::Value::Bool(b) => Ok(Value::Boolean(b)),
            serde_json::Value::Number(n) => {
                Ok(n.as_i64().map(Value::Integer).unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))))
            }
            other => Err(not_a_list(format!("found the entry {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn check_name(text: &str) -> Result<(), String> {
    const RULE: &str = "use only letters, digits, '.', '_' and '-' (it becomes a directory name)";
    if text.is_empty() {
        return Err(format!("must not be empty; {RULE}"));
    }
    if text == "." || text == ".." {
        return Err(format!("'{text}' is not allowed; {RULE}"));
    }
    if let Some(bad) = text.chars().find(|c| !is_name_char(*c)) {
        return Err(format!("'{text}' contains {bad:?}; {RULE}"));
    }
    Ok(())
}

fn check_socket_addr(text: &str, example: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        let hint = if text.contains("://") {
            format!(" (give only ip:port, without a scheme, e.g. {example})")
        } else if text.trim().parse::<u16>().is_ok() {
            format!(" (the IP address is missing, e.g. {example})")
        } else if text.contains(':') {
            " (host names are not accepted here; use an IP address, e.g. 0.0.0.0 for all interfaces)".to_owned()
        } else {
            String::new()
        };
        format!("cannot parse '{text}' as a socket address like {example}{hint}")
    })
}

/// `text` as an error message may show it: user-info (`user:password@`) replaced by `***@`.
fn without_user_info(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => text.to_owned(),
    }
}

/// An http(s) URL with a host; with `explicit_port`, the port must be written out even when
/// it equals the scheme's default. Messages never show the URL's user-info.
fn check_url(text: &str, explicit_port: bool) -> Result<Url, String> {
    const EXAMPLE: &str = "http://node1:5122";
    let shown = without_user_info(text);
    if !text.contains("://") {
        return Err(format!("'{shown}' is not a URL; it needs a scheme and a port, e.g. {EXAMPLE}"));
    }
    let url =
        Url::parse(text).map_err(|e| format!("cannot parse '{shown}' as a URL ({e}); expected e.g. {EXAMPLE}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "'{shown}' uses the scheme '{}'; only http:// and https:// are supported, e.g. {EXAMPLE}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{shown}' has no host; expected e.g. {EXAMPLE}"));
    }
    if explicit_port && !has_explicit_port(text) {
        return Err(format!("'{shown}' has no port; write it out, e.g. {EXAMPLE}"));
    }
    Ok(url)
}

/// Whether the authority of `url_text` ends in `:<digits>`. (`Url::port` cannot tell, as it
/// hides ports equal to the scheme's default.)
fn has_explicit_port(url_text: &str) -> bool {
    let after_scheme = url_text.split_once("://").map_or(url_text, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let after_host = match host_port.rfind(']') {
        Some(end_of_ipv6) => &host_port[end_of_ipv6 + 1..],
        None => host_port,
    };
    after_host.rsplit_once(':').is_some_and(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
}

fn check_roles(entries: &[Value], kind: &Kind) -> Result<(), String> {
    let all_roles = Role::ALL.map(Role::as_str).join(", ");
    if entries.is_empty() {
        return Err(format!("at least one role is required; choose from: {all_roles}"));
    }
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in entries {
        let Value::String(name) = entry else {
            problems.push(format!("{}; found the entry {}", kind.mismatch(entry), describe(entry)));
            continue;
        };
        match name.parse::<Role>() {
            Ok(role) if !seen.insert(role) => problems.push(format!("role '{name}' is listed twice")),
            Ok(_) => {}
            Err(_) => problems.push(format!("unknown role '{name}'; expected one of: {all_roles}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A known key `unknown` was probably meant to be, with an explanation when the likely cause
/// is more specific than a typo. `None` when nothing is close.
pub(crate) fn suggest(unknown: &str) -> Option<Suggestion> {
    let normalized = unknown.to_ascii_lowercase().replace('_', "-");
    if let Some(key) = lookup(&normalized) {
        return Some(Suggestion { key: key.path, reason: SuggestionReason::Spelling });
    }
    let depth = unknown.split('.').count();
    let last_segment = normalized.rsplit('.').next().unwrap_or_default();
    let same_name_shallower = SCHEMA
        .iter()
        .find(|key| key.path.rsplit('.').next() == Some(last_segment) && key.path.split('.').count() < depth);
    if let Some(key) = same_name_shallower {
        return Some(Suggestion { key: key.path, reason: SuggestionReason::BelongsToOuterTable });
    }
    let (distance, key) =
        SCHEMA.iter().map(|key| (edit_distance(&normalized, key.path), key)).min_by_key(|(distance, _)| *distance)?;
    let tolerated = (normalized.len() / 3).clamp(1, 3);
    (distance <= tolerated).then_some(Suggestion { key: key.path, reason: SuggestionReason::Spelling })
}

pub(crate) struct Suggestion {
    pub key: &'static str,
    pub reason: SuggestionReason,
}

pub(crate) enum SuggestionReason {
    Spelling,
    /// The key exists in an enclosing table; in TOML, a key written after a `[table]` header
    /// belongs to that table.
    BelongsToOuterTable,
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_types::{LogProviderKind, MetadataServerKind};

    use crate::model::LogFormat;

    #[test]
    fn enum_kinds_list_exactly_the_types_variants() {
        assert_eq!(PROVIDER_KINDS, LogProviderKind::ALL.map(LogProviderKind::as_str));
        assert_eq!(METADATA_SERVER_KINDS, MetadataServerKind::ALL.map(MetadataServerKind::as_str));
        assert_eq!(LOG_FORMATS, LogFormat::ALL.map(LogFormat::as_str));
    }

    #[test]
    fn tables_precede_their_members() {
        for (position, key) in SCHEMA.iter().enumerate() {
            if let Some((parent, _)) = key.path.rsplit_once('.') {
                let parent_position = SCHEMA.iter().position(|k| k.path == parent);
                assert!(parent_position.is_some_and(|p| p < position), "{}", key.path);
                assert_eq!(lookup(parent).unwrap().kind, Kind::Table, "{}", key.path);
            }
        }
    }

    #[test]
    fn explicit_port_detection() {
        assert!(has_explicit_port("http://node1:5122"));
        assert!(has_explicit_port("http://node1:80/"));
        assert!(has_explicit_port("http://user:pw@node1:80"));
        assert!(has_explicit_port("http://[::1]:5122"));
        assert!(!has_explicit_port("http://node1"));
        assert!(!has_explicit_port("http://user:pw@node1/"));
        assert!(!has_explicit_port("http://[::1]/"));
        assert!(!has_explicit_port("http://node1:/"));
    }

    #[test]
    fn url_checks() {
        let with_port = Kind::Url { explicit_port: true };
        assert!(with_port.check(&Value::String("https://node1:5122".into())).is_ok());
        let err = with_port.check(&Value::String("http://node1".into())).unwrap_err();
        assert!(err.contains("no port") && err.contains("http://node1:5122"), "{err}");
        let err = with_port.check(&Value::String("node1:5122".into())).unwrap_err();
        assert!(err.contains("not a URL"), "{err}");
        let err = with_port.check(&Value::String("http://:5122".into())).unwrap_err();
        assert!(err.contains("'http://:5122'"), "{err}");
        let default_port = Kind::Url { explicit_port: false };
        assert!(default_port.check(&Value::String("http://minio".into())).is_ok());
    }

    #[test]
    fn suggestions() {
        let spelled = |unknown: &str| suggest(unknown).map(|s| s.key);
        assert_eq!(spelled("node_name"), Some("node-name"));
        assert_eq!(spelled("admin.bind-adress"), Some("admin.bind-address"));
        assert_eq!(spelled("metadata-server.kind"), None);
        assert_eq!(spelled("service-host"), None);
        assert_eq!(spelled("port"), None);
        let moved = suggest("worker.snapshots.roles").unwrap();
        assert_eq!(moved.key, "roles");
        assert!(matches!(moved.reason, SuggestionReason::BelongsToOuterTable));
    }

    #[test]
    fn describes_values_with_type_and_content() {
        assert_eq!(describe(&Value::String("yes".into())), "string \"yes\"");
        assert_eq!(describe(&Value::Integer(3)), "integer 3");
        assert_eq!(describe(&Value::Array(vec![])), "a list");
    }
}
