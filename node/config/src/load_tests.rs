//! Behaviour of `load` across all sources: precedence, provenance, and every kind of bad input.

use std::collections::BTreeSet;
use std::path::PathBuf;

use restate_types::{LogProviderKind, MetadataServerKind, Role, RoleSet};
use url::Url;

use crate::schema::{self, Kind};
use crate::size::{GIB, MIB};
use crate::*;

const FILE_PATH: &str = "/etc/restate/restate.toml";

fn file_source() -> Source {
    Source::File(PathBuf::from(FILE_PATH))
}

fn env_source(name: &str) -> Source {
    Source::Env(name.to_owned())
}

fn with_file(contents: &str) -> ConfigSources {
    ConfigSources {
        file: Some(ConfigFile { path: FILE_PATH.into(), contents: contents.to_owned() }),
        ..ConfigSources::default()
    }
}

fn with_env(pairs: &[(&str, &str)]) -> ConfigSources {
    ConfigSources { env: env_pairs(pairs), ..ConfigSources::default() }
}

fn env_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn loaded(sources: &ConfigSources) -> Loaded {
    load(sources).unwrap_or_else(|errors| panic!("expected a valid configuration, got:\n{errors}"))
}

fn problems(sources: &ConfigSources) -> Vec<ConfigProblem> {
    match load(sources) {
        Ok(loaded) => panic!("expected problems, got a valid configuration: {:?}", loaded.config),
        Err(errors) => errors.0,
    }
}

/// The single problem of `sources`, checked to be about `key` from `source`.
fn single_problem(sources: &ConfigSources, key: &str, source: &Source) -> String {
    let problems = problems(sources);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let problem = &problems[0];
    assert_eq!(problem.key, key, "{problem}");
    assert_eq!(&problem.source, source, "{problem}");
    problem.message.clone()
}

fn file_problem(contents: &str, key: &str) -> String {
    single_problem(&with_file(contents), key, &file_source())
}

fn env_problem(name: &str, value: &str, key: &str) -> String {
    single_problem(&with_env(&[(name, value)]), key, &env_source(name))
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in: {haystack}");
    }
}

// ---- precedence and provenance ----

#[test]
fn cli_beats_env_beats_file_beats_default() {
    let mut sources = with_file(
        r#"
        node-name = "from-file"
        cluster-name = "file-cluster"
        default-replication = 2
        [admin]
        bind-address = "127.0.0.1:1000"
        "#,
    );
    sources.env = env_pairs(&[
        ("RESTATE_NODE_NAME", "from-env"),
        ("RESTATE_CLUSTER_NAME", "env-cluster"),
        ("RESTATE_ADMIN__BIND_ADDRESS", "127.0.0.1:2000"),
    ]);
    sources.cli = vec![
        CliOverride::new("node-name", "from-cli", "--node-name"),
        CliOverride::new("admin.bind-address", "127.0.0.1:3000", "--admin-bind-address"),
    ];
    let loaded = loaded(&sources);
    let config = &loaded.config;

    assert_eq!(config.node_name, "from-cli");
    assert_eq!(config.admin.bind_address, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(config.cluster_name, "env-cluster");
    assert_eq!(config.default_replication, restate_types::ReplicationProperty::nodes(2));
    assert!(config.auto_provision);
    assert_eq!(config.ingress.bind_address, "0.0.0.0:8080".parse().unwrap());

    assert_eq!(loaded.source_of("node-name"), Some(&Source::Cli("--node-name".into())));
    assert_eq!(loaded.source_of("admin.bind-address"), Some(&Source::Cli("--admin-bind-address".into())));
    assert_eq!(loaded.source_of("cluster-name"), Some(&env_source("RESTATE_CLUSTER_NAME")));
    assert_eq!(loaded.source_of("default-replication"), Some(&file_source()));
    assert_eq!(loaded.source_of("auto-provision"), Some(&Source::Default));
    assert_eq!(loaded.source_of("admin"), None, "tables have no provenance");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn provenance_covers_every_value_key() {
    let loaded = loaded(&ConfigSources::default());
    let expected: BTreeSet<&str> = schema::leaves().map(|key| key.path).collect();
    let actual: BTreeSet<&str> = loaded.provenance.keys().map(String::as_str).collect();
    assert_eq!(actual, expected);
    assert!(loaded.provenance.values().all(|source| *source == Source::Default));
}

#[test]
fn nothing_configured_gives_the_documented_defaults() {
    let config = loaded(&ConfigSources::default()).config;
    assert_eq!(config, Config::default());
    assert_eq!(config.cluster_name, "localcluster");
    assert_eq!(config.advertised_address, None);
    assert!(config.auto_provision);
    assert_eq!(config.default_replication, restate_types::ReplicationProperty::nodes(1));
    assert_eq!(config.default_num_partitions, 24);
    assert_eq!(config.roles, RoleSet::all());
    assert_eq!(config.base_dir, PathBuf::from("restate-data"));
    assert_eq!(config.bind_address, "0.0.0.0:5122".parse().unwrap());
    assert_eq!(config.rocksdb_total_memory_size, GIB);
    assert_eq!(config.log_filter, "info");
    assert_eq!(config.log_format, LogFormat::Pretty);
    assert_eq!(config.bifrost.default_provider, LogProviderKind::Local);
    assert_eq!(config.metadata_server.kind, MetadataServerKind::Local);
    assert!(config.metadata_client.addresses.is_empty());
    assert_eq!(config.admin.bind_address, "0.0.0.0:9070".parse().unwrap());
    assert_eq!(config.admin.query_engine.pgsql_bind_address, None);
    assert_eq!(config.worker.snapshots, SnapshotOptions::default());
}

#[test]
fn later_entries_of_the_same_source_win() {
    let loaded = loaded(&with_env(&[("RESTATE_NODE_NAME", "first"), ("RESTATE_NODE_NAME", "second")]));
    assert_eq!(loaded.config.node_name, "second");
}

// ---- the documented example and env forms ----

const SEED_EXAMPLE: &str = r#"
node-name = "node1"
cluster-name = "my-cluster"
advertised-address = "http://node1:5122"
auto-provision = false
default-replication = 2
roles = ["worker", "admin", "metadata-server", "log-server"]

[bifrost]
default-provider = "replicated"

[metadata-server]
type = "replicated"

[metadata-client]
addresses = ["http://node1:5122", "http://node2:5122"]

[admin]
bind-address = "0.0.0.0:9070"

[ingress]
bind-address = "0.0.0.0:8080"

[admin.query-engine]
pgsql-bind-address = "0.0.0.0:9071"

[worker.snapshots]
destination = "s3://snapshots-bucket/cluster-prefix"
"#;

#[test]
fn seed_example_parses() {
    let loaded = loaded(&with_file(SEED_EXAMPLE));
    let config = &loaded.config;
    assert_eq!(config.node_name, "node1");
    assert_eq!(config.cluster_name, "my-cluster");
    assert_eq!(config.advertised_address, Some(Url::parse("http://node1:5122").unwrap()));
    assert!(!config.auto_provision);
    assert_eq!(config.default_replication, restate_types::ReplicationProperty::nodes(2));
    assert_eq!(config.roles, [Role::Worker, Role::Admin, Role::MetadataServer, Role::LogServer].into_iter().collect());
    assert_eq!(config.bifrost.default_provider, LogProviderKind::Replicated);
    assert_eq!(config.metadata_server.kind, MetadataServerKind::Replicated);
    assert_eq!(
        config.metadata_client.addresses,
        vec![Url::parse("http://node1:5122").unwrap(), Url::parse("http://node2:5122").unwrap()]
    );
    assert_eq!(config.admin.bind_address, "0.0.0.0:9070".parse().unwrap());
    assert_eq!(config.ingress.bind_address, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.admin.query_engine.pgsql_bind_address, Some("0.0.0.0:9071".parse().unwrap()));
    assert_eq!(
        config.worker.snapshots.destination,
        Some(SnapshotDestination::S3 { bucket: "snapshots-bucket".into(), prefix: "cluster-prefix".into() })
    );
    assert_eq!(config.node_dir(), PathBuf::from("restate-data/node1"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn top_level_key_written_after_a_table_is_explained() {
    let roles_line = "roles = [\"worker\", \"admin\", \"metadata-server\", \"log-server\"]\n";
    assert!(SEED_EXAMPLE.contains(roles_line));
    let misplaced = SEED_EXAMPLE.replace(roles_line, "") + roles_line;
    let message = file_problem(&misplaced, "worker.snapshots.roles");
    assert_contains(&message, &["did you mean `roles`?", "[table] header", "above the first [table] header"]);
}

#[test]
fn metadata_client_addresses_from_a_json_env_list() {
    let loaded = loaded(&with_env(&[("RESTATE_METADATA_CLIENT__ADDRESSES", r#"["http://n1:5122","http://n2:5122"]"#)]));
    assert_eq!(
        loaded.config.metadata_client.addresses,
        vec![Url::parse("http://n1:5122").unwrap(), Url::parse("http://n2:5122").unwrap()]
    );
    assert_eq!(loaded.source_of("metadata-client.addresses"), Some(&env_source("RESTATE_METADATA_CLIENT__ADDRESSES")));
}

#[test]
fn nested_env_names_reach_nested_keys() {
    let config = loaded(&with_env(&[
        ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
        ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
        ("RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS", "0.0.0.0:9071"),
        ("RESTATE_WORKER__SNAPSHOTS__DESTINATION", "file:///var/lib/snapshots"),
        ("RESTATE_WORKER__SNAPSHOTS__SNAPSHOT_INTERVAL_NUM_RECORDS", "1000"),
        ("RESTATE_WORKER__SNAPSHOTS__AWS_ALLOW_HTTP", "true"),
        ("RESTATE_ROLES", r#"["worker","admin"]"#),
        ("RESTATE_AUTO_PROVISION", "false"),
        ("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", "512 MiB"),
        ("RESTATE_LOG_FORMAT", "json"),
    ]))
    .config;
    assert_eq!(config.metadata_server.kind, MetadataServerKind::Replicated);
    assert_eq!(config.bifrost.default_provider, LogProviderKind::Replicated);
    assert_eq!(config.admin.query_engine.pgsql_bind_address, Some("0.0.0.0:9071".parse().unwrap()));
    assert_eq!(config.worker.snapshots.destination, Some(SnapshotDestination::Directory("/var/lib/snapshots".into())));
    assert_eq!(config.worker.snapshots.snapshot_interval_num_records, Some(1000));
    assert_eq!(config.worker.snapshots.aws_allow_http, Some(true));
    assert_eq!(config.roles, [Role::Worker, Role::Admin].into_iter().collect());
    assert!(!config.auto_provision);
    assert_eq!(config.rocksdb_total_memory_size, 512 * MIB);
    assert_eq!(config.log_format, LogFormat::Json);
}

#[test]
fn env_strings_are_taken_raw() {
    let config = loaded(&with_env(&[("RESTATE_NODE_NAME", "123"), ("RESTATE_LOG_FILTER", "info,h2=warn")])).config;
    assert_eq!(config.node_name, "123");
    assert_eq!(config.log_filter, "info,h2=warn");
}

#[test]
fn sizes_accept_units_and_plain_bytes() {
    assert_eq!(loaded(&with_file("rocksdb-total-memory-size = \"6 GiB\"")).config.rocksdb_total_memory_size, 6 * GIB);
    assert_eq!(
        loaded(&with_file("rocksdb-total-memory-size = \"1GB\"")).config.rocksdb_total_memory_size,
        1_000_000_000
    );
    assert_eq!(loaded(&with_file("rocksdb-total-memory-size = 536870912")).config.rocksdb_total_memory_size, 512 * MIB);
    let from_env = loaded(&with_env(&[("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", "2147483648")]));
    assert_eq!(from_env.config.rocksdb_total_memory_size, 2 * GIB);
}

#[test]
fn config_file_variable_is_not_a_key() {
    let loaded = loaded(&with_env(&[("RESTATE_CONFIG", "/etc/restate/restate.toml"), ("HOME", "/root")]));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

// ---- unknown keys ----

#[test]
fn unknown_file_key_is_an_error_with_a_suggestion() {
    let message = file_problem("node_name = \"n1\"", "node_name");
    assert_contains(&message, &["unknown key", "did you mean `node-name`?"]);

    let message = file_problem("[admin]\nbind-adress = \"0.0.0.0:9070\"", "admin.bind-adress");
    assert_contains(&message, &["unknown key", "did you mean `admin.bind-address`?"]);

    let message = file_problem("[admn]\nbind-address = \"0.0.0.0:9070\"", "admn");
    assert_contains(&message, &["unknown table", "did you mean `admin`?"]);

    let message = file_problem("[metadata-server]\nkind = \"replicated\"", "metadata-server.kind");
    assert_contains(&message, &["unknown key", "[metadata-server] accepts: type"]);

    let message = file_problem("completely-unrelated = 1", "completely-unrelated");
    assert_eq!(message, "unknown key");
}

#[test]
fn unknown_restate_env_vars_are_warnings_only() {
    let loaded = loaded(&with_env(&[
        ("RESTATE_SERVICE_HOST", "10.96.0.12"),
        ("RESTATE_PORT", "tcp://10.96.0.12:8080"),
        ("RESTATE_ADMIN_BIND_ADDRESS", "0.0.0.0:9070"),
        ("RESTATE_ADMIN", "x"),
        ("RESTATE_NODE_NAME", "n1"),
    ]));
    assert_eq!(loaded.config.node_name, "n1");
    let warnings = &loaded.warnings;
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert_contains(&warnings[0], &["RESTATE_SERVICE_HOST", "does not name a configuration key"]);
    assert!(!warnings[0].contains("did you mean"), "{}", warnings[0]);
    assert_contains(&warnings[1], &["RESTATE_PORT"]);
    assert_contains(&warnings[2], &["RESTATE_ADMIN_BIND_ADDRESS", "did you mean RESTATE_ADMIN__BIND_ADDRESS?"]);
    assert_contains(&warnings[3], &["RESTATE_ADMIN", "is a table", "RESTATE_ADMIN__BIND_ADDRESS"]);
}

#[test]
#[should_panic(expected = "--frobnicate")]
fn unknown_cli_key_is_a_bug() {
    let sources =
        ConfigSources { cli: vec![CliOverride::new("frobnicate", "1", "--frobnicate")], ..ConfigSources::default() };
    let _ = load(&sources);
}

// ---- wrong types ----

#[test]
fn wrong_types_in_the_file_name_expected_and_found() {
    let message = file_problem("auto-provision = \"yes\"", "auto-provision");
    assert_eq!(message, "expected a boolean (true or false), found string \"yes\"");
    let message = file_problem("default-replication = 2.5", "default-replication");
    assert_contains(&message, &["expected a copy count like 2 or a property", "found float 2.5"]);
    let message = file_problem("default-replication = \"{rack: 2, node: 3}\"", "default-replication");
    assert_contains(&message, &["unknown scope 'rack' (known: region, zone, node)"]);
    let message = file_problem("location = \"a.b.c\"", "location");
    assert_contains(&message, &["more than two parts", "\"region.zone\""]);
    let message = file_problem("default-num-partitions = 2.5", "default-num-partitions");
    assert_eq!(message, "expected an integer, found float 2.5");
    let message = file_problem("node-name = 5", "node-name");
    assert_contains(&message, &["expected a name", "found integer 5"]);
    let message = file_problem("admin = 5", "admin");
    assert_eq!(message, "expected a table, found integer 5");
    let message = file_problem("[node-name]\nx = 1", "node-name");
    assert_contains(&message, &["found a table"]);
    let message = file_problem("roles = \"worker\"", "roles");
    assert_contains(&message, &["expected a list of roles", "found string \"worker\""]);
}

#[test]
fn wrong_types_in_env_name_the_variable() {
    let message = env_problem("RESTATE_AUTO_PROVISION", "yes", "auto-provision");
    assert_eq!(message, "expected a boolean (true or false), found string \"yes\"");
    let message = env_problem("RESTATE_DEFAULT_REPLICATION", "two", "default-replication");
    assert_contains(&message, &["not a number and not in braces", "\"{zone: 2, node: 3}\""]);
    let message = env_problem("RESTATE_AUTO_PROVISION", "", "auto-provision");
    assert_contains(&message, &["set but empty", "unset RESTATE_AUTO_PROVISION"]);
}

#[test]
fn wrong_values_from_cli_flags_name_the_flag() {
    let sources = ConfigSources {
        cli: vec![CliOverride::new("bind-address", "nope", "--bind-address")],
        ..ConfigSources::default()
    };
    let message = single_problem(&sources, "bind-address", &Source::Cli("--bind-address".into()));
    assert_eq!(message, "cannot parse 'nope' as a socket address like 0.0.0.0:5122");
}

// ---- values of the right type that are still wrong ----

#[test]
fn unparsable_socket_address() {
    let errors = load(&with_env(&[("RESTATE_ADMIN__BIND_ADDRESS", "abc")])).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "invalid configuration (1 problem):\n  - `admin.bind-address` (env RESTATE_ADMIN__BIND_ADDRESS): \
         cannot parse 'abc' as a socket address like 0.0.0.0:9070"
    );
    let message = file_problem("[ingress]\nbind-address = \"localhost:8080\"", "ingress.bind-address");
    assert_contains(&message, &["cannot parse 'localhost:8080'", "host names are not accepted"]);
    let message =
        file_problem("[admin.query-engine]\npgsql-bind-address = \"9071\"", "admin.query-engine.pgsql-bind-address");
    assert_contains(&message, &["like 0.0.0.0:9071", "IP address is missing"]);
}

#[test]
fn bad_advertised_addresses() {
    let message = file_problem("advertised-address = \"node1:5122\"", "advertised-address");
    assert_contains(&message, &["not a URL", "http://node1:5122"]);
    let message = file_problem("advertised-address = \"http://node1\"", "advertised-address");
    assert_contains(&message, &["has no port", "http://node1:5122"]);
    let message = file_problem("advertised-address = \"ftp://node1:21\"", "advertised-address");
    assert_contains(&message, &["scheme 'ftp'", "http://", "https://"]);
    let message = env_problem("RESTATE_ADVERTISED_ADDRESS", "http://exa mple:5122", "advertised-address");
    assert_contains(&message, &["cannot parse 'http://exa mple:5122' as a URL"]);
    assert!(load(&with_file("advertised-address = \"https://node1.example.com:443\"")).is_ok());
}

#[test]
fn bad_metadata_client_addresses() {
    let message = file_problem(
        "[metadata-client]\naddresses = [\"http://n1:5122\", \"n2:5122\", 7]",
        "metadata-client.addresses",
    );
    assert_contains(&message, &["entry 2: 'n2:5122' is not a URL", "entry 3: expected a URL string, found integer 7"]);
}

#[test]
fn bad_roles() {
    let message = file_problem("roles = [\"worker\", \"ingress\"]", "roles");
    assert_contains(&message, &["unknown role 'ingress'", "http-ingress"]);
    let message = file_problem("roles = []", "roles");
    assert_contains(&message, &["at least one role is required"]);
    let message = file_problem("roles = [\"worker\", \"admin\", \"worker\"]", "roles");
    assert_contains(&message, &["role 'worker' is listed twice"]);
    let message = env_problem("RESTATE_ROLES", "[]", "roles");
    assert_contains(&message, &["at least one role is required"]);
    let message = env_problem("RESTATE_ROLES", "worker,admin", "roles");
    assert_contains(&message, &["expected a JSON list like [\"worker\",\"admin\"]", "worker,admin"]);
}

#[test]
fn numbers_out_of_range() {
    let message = file_problem("default-replication = 0", "default-replication");
    assert_eq!(message, "must be between 1 and 128, found 0");
    let message = file_problem("default-num-partitions = 0", "default-num-partitions");
    assert_eq!(message, "must be between 1 and 4096, found 0");
    let message = env_problem("RESTATE_DEFAULT_NUM_PARTITIONS", "4097", "default-num-partitions");
    assert_eq!(message, "must be between 1 and 4096, found 4097");
    let message = file_problem("default-replication = -1", "default-replication");
    assert_eq!(message, "must be between 1 and 128, found -1");
    let message = file_problem(
        "[worker.snapshots]\nsnapshot-interval-num-records = 0",
        "worker.snapshots.snapshot-interval-num-records",
    );
    assert_eq!(message, "must be at least 1, found 0");
}

#[test]
fn invalid_json_list_in_env() {
    let message =
        env_problem("RESTATE_METADATA_CLIENT__ADDRESSES", r#"["http://n1:5122","#, "metadata-client.addresses");
    assert_contains(&message, &["expected a JSON list like", "cannot parse", "as JSON"]);
    let message = env_problem("RESTATE_METADATA_CLIENT__ADDRESSES", "http://n1:5122", "metadata-client.addresses");
    assert_contains(&message, &["expected a JSON list like [\"http://node1:5122\""]);
    let message = env_problem("RESTATE_METADATA_CLIENT__ADDRESSES", r#"{"a":1}"#, "metadata-client.addresses");
    assert_contains(&message, &["expected a JSON list"]);
}

#[test]
fn bad_sizes() {
    let message = file_problem("rocksdb-total-memory-size = \"lots\"", "rocksdb-total-memory-size");
    assert_contains(&message, &["cannot parse 'lots' as a size", "512 MiB"]);
    let message = env_problem("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", "1 MiB", "rocksdb-total-memory-size");
    assert_contains(&message, &["must be at least 16 MiB", "found 1048576 bytes"]);
    let message = file_problem("rocksdb-total-memory-size = -5", "rocksdb-total-memory-size");
    assert_contains(&message, &["cannot be negative"]);
}

#[test]
fn bad_snapshot_destinations() {
    for bad in ["gs://bucket/x", "/var/snapshots", "s3://", "file://relative/dir"] {
        let message =
            file_problem(&format!("[worker.snapshots]\ndestination = \"{bad}\""), "worker.snapshots.destination");
        assert_contains(&message, &[bad, "s3://<bucket>/<prefix>", "file://<absolute path>"]);
    }
}

#[test]
fn bad_enum_values() {
    let message = file_problem("[metadata-server]\ntype = \"raft\"", "metadata-server.type");
    assert_eq!(message, "unknown value 'raft'; expected one of \"local\", \"replicated\"");
    let message = env_problem("RESTATE_LOG_FORMAT", "xml", "log-format");
    assert_contains(&message, &["'xml'", "\"pretty\", \"json\""]);
}

#[test]
fn bad_names() {
    let message = file_problem("node-name = \"my node\"", "node-name");
    assert_contains(&message, &["contains ' '", "directory name"]);
    let message = env_problem("RESTATE_NODE_NAME", "..", "node-name");
    assert_contains(&message, &["'..' is not allowed"]);
    let message = file_problem("cluster-name = \"\"", "cluster-name");
    assert_contains(&message, &["must not be empty"]);
    let message = file_problem("log-filter = \" \"", "log-filter");
    assert_contains(&message, &["must not be empty"]);
}

#[test]
fn toml_syntax_error_names_file_line_and_column() {
    let errors = load(&with_file("node-name = \"n1\"\ncluster-name = \n")).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    let problem = &errors.0[0];
    assert_eq!(problem.key, "");
    assert_eq!(problem.source, file_source());
    assert_contains(&problem.message, &["TOML syntax error at line 2, column"]);
    assert_contains(&errors.to_string(), &["(file /etc/restate/restate.toml): TOML syntax error at line 2"]);
}

#[test]
fn every_problem_of_every_source_is_reported() {
    let mut sources = with_file("auto-provision = \"yes\"\nnode-name = \"ok\"\n");
    sources.env = env_pairs(&[("RESTATE_ADMIN__BIND_ADDRESS", "abc"), ("RESTATE_PORT", "tcp://x:1")]);
    sources.cli = vec![CliOverride::new("default-replication", "0", "--default-replication")];
    let problems = problems(&sources);
    let reported: Vec<(&str, &Source)> = problems.iter().map(|p| (p.key.as_str(), &p.source)).collect();
    assert_eq!(
        reported,
        vec![
            ("auto-provision", &file_source()),
            ("admin.bind-address", &env_source("RESTATE_ADMIN__BIND_ADDRESS")),
            ("default-replication", &Source::Cli("--default-replication".into())),
        ]
    );
    let rendered = ConfigErrors(problems).to_string();
    assert!(rendered.starts_with("invalid configuration (3 problems):\n"), "{rendered}");
    assert_eq!(rendered.lines().count(), 4, "{rendered}");
}

#[test]
fn repair_grace_period_takes_durations_and_refuses_out_of_range_values() {
    let config = loaded(&with_env(&[("RESTATE_ADMIN__LOG_SERVER_REPAIR_GRACE_PERIOD", "3s")])).config;
    assert_eq!(config.admin.log_server_repair_grace_period_ms, 3_000);
    single_problem(
        &with_env(&[("RESTATE_ADMIN__LOG_SERVER_REPAIR_GRACE_PERIOD", "10ms")]),
        "admin.log-server-repair-grace-period",
        &env_source("RESTATE_ADMIN__LOG_SERVER_REPAIR_GRACE_PERIOD"),
    );
}

#[test]
fn workflow_completion_retention_defaults_to_a_day() {
    assert_eq!(loaded(&with_env(&[])).config.worker.workflow_completion_retention_ms, 24 * 3_600_000);
    let config = loaded(&with_env(&[("RESTATE_WORKER__WORKFLOW_COMPLETION_RETENTION", "30min")])).config;
    assert_eq!(config.worker.workflow_completion_retention_ms, 30 * 60_000);
}

#[test]
fn idempotency_retention_defaults_to_a_day_and_takes_hours() {
    assert_eq!(loaded(&with_env(&[])).config.worker.idempotency_retention_ms, 24 * 3_600_000);
    let config = loaded(&with_file("[worker]\nidempotency-retention = \"2h\"")).config;
    assert_eq!(config.worker.idempotency_retention_ms, 2 * 3_600_000);
    single_problem(
        &with_env(&[("RESTATE_WORKER__IDEMPOTENCY_RETENTION", "5 fortnights")]),
        "worker.idempotency-retention",
        &env_source("RESTATE_WORKER__IDEMPOTENCY_RETENTION"),
    );
}

#[test]
fn a_bad_file_value_is_reported_even_when_env_overrides_it() {
    let mut sources = with_file("node-name = 5");
    sources.env = env_pairs(&[("RESTATE_NODE_NAME", "n1")]);
    single_problem(&sources, "node-name", &file_source());
}

// ---- warnings about plausible mistakes ----

#[test]
fn warns_when_other_nodes_cannot_reach_the_derived_advertised_address() {
    let remote = loaded(&with_env(&[("RESTATE_METADATA_CLIENT__ADDRESSES", r#"["http://n1:5122","http://n2:5122"]"#)]));
    assert_eq!(remote.warnings.len(), 1, "{:?}", remote.warnings);
    assert_contains(&remote.warnings[0], &["advertised-address is not set", "http://127.0.0.1:5122"]);

    let local_only = loaded(&with_env(&[("RESTATE_METADATA_CLIENT__ADDRESSES", r#"["http://127.0.0.1:5122"]"#)]));
    assert!(local_only.warnings.is_empty(), "{:?}", local_only.warnings);
}

// ---- schema and struct stay in step ----

/// A config with every optional value set, so that serialization shows every key.
fn fully_populated() -> Config {
    Config {
        node_name: "node1".into(),
        cluster_name: "prod".into(),
        advertised_address: Some(Url::parse("http://node1:5122").unwrap()),
        auto_provision: false,
        default_replication: "{zone: 2, node: 3}".parse().unwrap(),
        location: "eu-west-1.eu-west-1a".parse().unwrap(),
        location_file: Some("/etc/restate-locations/node1".into()),
        default_num_partitions: 64,
        roles: [Role::Worker, Role::Admin].into_iter().collect(),
        base_dir: "/var/lib/restate".into(),
        bind_address: "10.0.0.1:5122".parse().unwrap(),
        rocksdb_total_memory_size: 6 * GIB,
        log_filter: "info,restate_bifrost=debug".into(),
        log_format: LogFormat::Json,
        request_identity_private_key_pem_file: Some("/etc/restate/identity.pem".into()),
        bifrost: BifrostOptions { default_provider: LogProviderKind::Replicated },
        metadata_server: MetadataServerOptions {
            kind: MetadataServerKind::Replicated,
            auto_join: false,
            raft_tick_interval_ms: 20,
            raft_election_tick: 30,
            raft_heartbeat_tick: 3,
        },
        metadata_client: MetadataClientOptions {
            addresses: vec![Url::parse("http://node1:5122").unwrap(), Url::parse("http://node2:5122").unwrap()],
        },
        admin: AdminOptions {
            bind_address: "0.0.0.0:19070".parse().unwrap(),
            query_engine: QueryEngineOptions {
                pgsql_bind_address: Some("0.0.0.0:9071".parse().unwrap()),
                max_rows: 5_000,
                max_memory: 64 * MIB,
            },
            log_server_repair_grace_period_ms: 5_000,
        },
        ingress: IngressOptions { bind_address: "0.0.0.0:18080".parse().unwrap(), request_body_size_limit: 1 << 20 },
        worker: WorkerOptions {
            idempotency_retention_ms: 3_600_000,
            workflow_completion_retention_ms: 24 * 3_600_000,
            snapshots: SnapshotOptions {
                destination: Some("s3://bucket/prefix".parse().unwrap()),
                snapshot_interval_num_records: Some(10_000),
                aws_region: Some("eu-central-1".into()),
                aws_endpoint_url: Some(Url::parse("http://minio:9000").unwrap()),
                aws_access_key_id: Some("AKIA123".into()),
                aws_secret_access_key: Some("s3cr3t-key".into()),
                aws_session_token: Some("s3cr3t-token".into()),
                aws_profile: Some("restate".into()),
                aws_allow_http: Some(true),
            },
            invoker: InvokerOptions { inactivity_timeout_ms: 30_000, abort_timeout_ms: 300_000 },
        },
        invocation: InvocationOptions {
            default_retry_policy: RetryPolicyOptions {
                initial_interval_ms: 200,
                exponentiation_factor: 1.5,
                max_interval_ms: 30_000,
                max_attempts: 5,
                on_max_attempts: OnMaxAttempts::Kill,
            },
        },
        networking: NetworkingOptions {
            cluster_secret_file: Some("/etc/restate/cluster-secret".into()),
            tls_cert_file: Some("/etc/restate/tls/node.crt".into()),
            tls_key_file: Some("/etc/restate/tls/node.key".into()),
            tls_ca_file: Some("/etc/restate/tls/ca.crt".into()),
            insecure: true,
            request_header_timeout_ms: 5_000,
            max_connections: 2_000,
        },
    }
}

/// Key paths of `table`, split into tables and values.
fn key_paths(table: &toml::Table, prefix: &str, tables: &mut BTreeSet<String>, values: &mut BTreeSet<String>) {
    for (name, value) in table {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            toml::Value::Table(inner) => {
                key_paths(inner, &path, tables, values);
                tables.insert(path);
            }
            _ => {
                values.insert(path);
            }
        }
    }
}

#[test]
fn schema_lists_exactly_the_fields_of_config() {
    let serialized = toml::Table::try_from(fully_populated()).unwrap();
    let (mut tables, mut values) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&serialized, "", &mut tables, &mut values);
    let schema_tables: BTreeSet<String> =
        schema::SCHEMA.iter().filter(|key| key.kind == Kind::Table).map(|key| key.path.to_owned()).collect();
    let schema_values: BTreeSet<String> = schema::leaves().map(|key| key.path.to_owned()).collect();
    assert_eq!(values, schema_values);
    assert_eq!(tables, schema_tables);
}

#[test]
fn every_value_kind_accepts_what_config_serializes() {
    let shown = fully_populated().to_toml();
    let reloaded = loaded(&with_file(&shown)).config;
    let mut expected = fully_populated();
    expected.worker.snapshots.aws_secret_access_key = Some(REDACTED.into());
    expected.worker.snapshots.aws_session_token = Some(REDACTED.into());
    assert_eq!(reloaded, expected, "{shown}");

    let defaults = Config::default();
    assert_eq!(loaded(&with_file(&defaults.to_toml())).config, defaults);
}

#[test]
fn to_toml_hides_every_secret() {
    let shown = fully_populated().to_toml();
    assert!(!shown.contains("s3cr3t"), "{shown}");
    let table: toml::Table = shown.parse().unwrap();
    for key in schema::SCHEMA.iter().filter(|key| key.kind == Kind::Secret) {
        let mut value = &toml::Value::Table(table.clone());
        for segment in key.path.split('.') {
            value = &value[segment];
        }
        assert_eq!(value.as_str(), Some(REDACTED), "{}", key.path);
    }
    assert_contains(&shown, &["rocksdb-total-memory-size = \"6 GiB\"", "aws-access-key-id = \"AKIA123\""]);
}

#[test]
fn errors_never_show_a_secret_value_or_a_urls_user_info() {
    let mistyped = file_problem(
        "[worker.snapshots]\naws-secret-access-key = 12345678901",
        "worker.snapshots.aws-secret-access-key",
    );
    assert!(!mistyped.contains("12345678901"), "{mistyped}");
    assert_contains(&mistyped, &["expected a string", "integer"]);
    let message = env_problem(
        "RESTATE_WORKER__SNAPSHOTS__AWS_ENDPOINT_URL",
        "ftp://minio:pa55word@minio:9000",
        "worker.snapshots.aws-endpoint-url",
    );
    assert!(!message.contains("pa55word") && !message.contains("minio:pa55"), "{message}");
    assert_contains(&message, &["ftp://***@minio:9000"]);
}

#[test]
fn raft_timing_keys_parse_durations_and_check_their_relation() {
    let loaded = load(&ConfigSources {
        env: vec![
            ("RESTATE_METADATA_SERVER__RAFT_TICK_INTERVAL".into(), "100ms".into()),
            ("RESTATE_METADATA_SERVER__RAFT_ELECTION_TICK".into(), "20".into()),
        ],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(loaded.config.metadata_server.raft_tick_interval_ms, 100);
    assert_eq!(loaded.config.metadata_server.raft_election_tick, 20);
    let file = ConfigFile {
        path: "restate.toml".into(),
        contents: "[metadata-server]\nraft-tick-interval = \"1.5s\"\nraft-heartbeat-tick = 12\n".into(),
    };
    let err = load(&ConfigSources { file: Some(file), ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("raft-heartbeat-tick") && err.contains("raft-election-tick"), "{err}");
    let bad = load(&ConfigSources {
        env: vec![("RESTATE_METADATA_SERVER__RAFT_TICK_INTERVAL".into(), "fast".into())],
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(bad.contains("RESTATE_METADATA_SERVER__RAFT_TICK_INTERVAL") && bad.contains("duration"), "{bad}");
}

#[test]
fn retry_policy_takes_restates_keys_and_refuses_a_bad_factor_or_action() {
    let defaults = loaded(&with_env(&[])).config.invocation.default_retry_policy;
    assert_eq!((defaults.initial_interval_ms, defaults.max_interval_ms, defaults.max_attempts), (50, 10_000, 70));
    assert_eq!(defaults.on_max_attempts, OnMaxAttempts::Pause);
    let config = loaded(&with_file(
        "[invocation.default-retry-policy]\ninitial-interval = \"1s\"\nexponentiation-factor = 3\nmax-attempts = 4\non-max-attempts = \"kill\"",
    ))
    .config;
    let policy = config.invocation.default_retry_policy;
    assert_eq!((policy.initial_interval_ms, policy.exponentiation_factor, policy.max_attempts), (1_000, 3.0, 4));
    assert_eq!(policy.on_max_attempts, OnMaxAttempts::Kill);
    let env = loaded(&with_env(&[("RESTATE_INVOCATION__DEFAULT_RETRY_POLICY__EXPONENTIATION_FACTOR", "1.5")])).config;
    assert_eq!(env.invocation.default_retry_policy.exponentiation_factor, 1.5);
    for (toml, key, says) in [
        ("exponentiation-factor = 0.5", "exponentiation-factor", "must be from 1 to 10"),
        ("on-max-attempts = \"retry\"", "on-max-attempts", "unknown value 'retry'"),
        ("max-attempts = 0", "max-attempts", "must be between 1 and"),
    ] {
        let message = file_problem(
            &format!("[invocation.default-retry-policy]\n{toml}"),
            &format!("invocation.default-retry-policy.{key}"),
        );
        assert!(message.contains(says), "{toml}: {message}");
    }
}
