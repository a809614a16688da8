//! The engine over a fixed registry and invocation list.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use restate_metadata::objects::{NewDeployment, Schema, ServiceDefinition, ServiceType};
use restate_partition::introspect::{PartitionTable, Row, RowFilter};

use crate::{AttemptRow, ClusterData, InvocationRow, QueryEngine, QueryError, QueryLimits};

struct Fixed {
    registry: Schema,
    invocations: Result<Vec<InvocationRow>, String>,
    /// The filter of every scan, by table.
    filters: std::sync::Mutex<Vec<(&'static str, RowFilter)>>,
}

#[async_trait]
impl ClusterData for Fixed {
    async fn registry(&self) -> Result<Schema, String> {
        Ok(self.registry.clone())
    }
    async fn invocations(&self, filter: &RowFilter) -> Result<Vec<InvocationRow>, String> {
        self.filters.lock().unwrap().push(("sys_invocation", filter.clone()));
        self.invocations.clone()
    }
    async fn partition_rows(&self, table: PartitionTable, filter: &RowFilter) -> Result<Vec<Row>, String> {
        self.filters.lock().unwrap().push((table.sql_name(), filter.clone()));
        Ok(match table {
            PartitionTable::State => vec![
                Row::State {
                    partition_key: 7,
                    service_name: "Counter".into(),
                    service_key: "c-1".into(),
                    key: Bytes::from_static(b"count"),
                    value: Bytes::from_static(b"42"),
                },
                Row::State {
                    partition_key: 7,
                    service_name: "Counter".into(),
                    service_key: "c-1".into(),
                    key: Bytes::from_static(b"blob"),
                    value: Bytes::from_static(&[0xff, 0x00]),
                },
            ],
            PartitionTable::KeyedServiceStatus => vec![Row::KeyedServiceStatus {
                partition_key: 7,
                service_name: "Counter".into(),
                service_key: "c-1".into(),
                invocation_id: "inv_1".into(),
            }],
            _ => Vec::new(),
        })
    }
}

fn registry() -> Schema {
    let mut schema = Schema::default();
    let service = |name: &str, ty| ServiceDefinition { name: name.into(), ty, handlers: Vec::new() };
    let deployment = NewDeployment {
        uri: "http://svc:9080".into(),
        additional_headers: Default::default(),
        protocol_mode: None,
        min_protocol_version: 5,
        max_protocol_version: 6,
        use_http_11: false,
        services: vec![service("Greeter", ServiceType::Service), service("Counter", ServiceType::VirtualObject)],
    };
    schema.register(deployment, false, "dp_1", "2026-01-02T03:04:05.000Z").unwrap();
    schema
}

fn invocation(id: &str, target: &str, status: &str) -> InvocationRow {
    InvocationRow {
        id: id.into(),
        target: target.into(),
        status: status.into(),
        idempotency_key: None,
        created_at_ms: 1_767_000_000_000,
        completed_at_ms: (status == "completed").then_some(1_767_000_001_000),
        failure: None,
        attempt: (status == "invoked").then(|| AttemptRow { in_flight: true, retry_count: 1, ..Default::default() }),
    }
}

fn engine(invocations: Result<Vec<InvocationRow>, String>, limits: QueryLimits) -> QueryEngine {
    QueryEngine::new(Arc::new(Fixed { registry: registry(), invocations, filters: Default::default() }), limits)
}

fn rows(engine: &QueryEngine, sql: &str) -> Vec<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = runtime.block_on(engine.execute(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    crate::json::rows(&result).unwrap()
}

fn error(engine: &QueryEngine, sql: &str) -> QueryError {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(engine.execute(sql)).expect_err(sql)
}

#[test]
fn registry_tables_answer_with_restates_columns() {
    let engine = engine(Ok(Vec::new()), QueryLimits::default());
    let services = rows(&engine, "SELECT name, ty, revision, deployment_id, public FROM sys_service ORDER BY name");
    assert_eq!(services.len(), 2);
    assert_eq!(services[0]["name"], "Counter");
    assert_eq!(services[0]["ty"], "virtual_object");
    assert_eq!(services[1]["ty"], "service");
    assert_eq!(services[1]["deployment_id"], "dp_1");
    let deployments = rows(&engine, "SELECT id, ty, endpoint, created_at, services FROM sys_deployment");
    assert_eq!(deployments[0]["endpoint"], "http://svc:9080");
    assert_eq!(deployments[0]["ty"], "http");
    assert!(deployments[0]["created_at"].as_str().unwrap().starts_with("2026-01-02T03:04:05"), "{deployments:?}");
    assert_eq!(deployments[0]["services"], serde_json::json!(["Counter", "Greeter"]), "the services it declared");
}

#[test]
fn invocations_join_the_registry_and_use_restates_status_names() {
    let all = vec![
        invocation("inv_1", "Counter/c-1/add", "invoked"),
        invocation("inv_2", "Counter/c-1/add", "inboxed"),
        invocation("inv_3", "Greeter/greet", "completed"),
        invocation("inv_4", "Greeter/greet", "suspended"),
    ];
    let engine = engine(Ok(all), QueryLimits::default());
    let counted = rows(&engine, "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status ORDER BY status");
    let pairs: Vec<(String, i64)> =
        counted.iter().map(|r| (r["status"].as_str().unwrap().to_owned(), r["n"].as_i64().unwrap())).collect();
    assert_eq!(pairs, [("completed".into(), 1), ("pending".into(), 1), ("running".into(), 1), ("suspended".into(), 1)]);
    let blocking = rows(
        &engine,
        "SELECT id, target_service_key, target_service_ty FROM sys_invocation \
         WHERE target_service_name = 'Counter' AND status = 'running'",
    );
    assert_eq!(
        blocking,
        [serde_json::json!({"id": "inv_1", "target_service_key": "c-1", "target_service_ty": "virtual_object"})]
    );
    let joined = rows(
        &engine,
        "SELECT i.id, s.deployment_id FROM sys_invocation i JOIN sys_service s ON s.name = i.target_service_name \
         WHERE i.status = 'completed'",
    );
    assert_eq!(joined, [serde_json::json!({"id": "inv_3", "deployment_id": "dp_1"})]);
    let completed =
        rows(&engine, "SELECT completion_result, target_service_key FROM sys_invocation WHERE id = 'inv_3'");
    assert_eq!(completed, [serde_json::json!({"completion_result": "success", "target_service_key": null})]);
}

#[test]
fn bad_queries_and_limits_are_clear_errors() {
    let engine = engine(
        Ok(vec![invocation("a", "Greeter/greet", "invoked"); 5]),
        QueryLimits { max_rows: 3, max_memory_bytes: 64 << 20 },
    );
    let syntax = error(&engine, "SELEC * FROM sys_service");
    assert!(matches!(syntax, QueryError::Invalid(_)), "{syntax:?}");
    assert_eq!(syntax.sqlstate(), "42000");
    let table = error(&engine, "SELECT * FROM no_such_table");
    assert!(table.to_string().contains("no_such_table"), "{table}");
    let column = error(&engine, "SELECT no_such_column FROM sys_service");
    assert!(column.to_string().contains("no_such_column"), "{column}");
    let ddl = error(&engine, "CREATE TABLE t AS SELECT 1");
    assert!(matches!(ddl, QueryError::Invalid(_)), "{ddl:?}");
    let too_many = error(&engine, "SELECT * FROM sys_invocation");
    assert!(
        matches!(too_many, QueryError::Limit(_)) && too_many.to_string().contains("more than 3 rows"),
        "{too_many}"
    );
    assert_eq!(rows(&engine, "SELECT * FROM sys_invocation LIMIT 3").len(), 3);
    let empty = error(&engine, "  ");
    assert!(empty.to_string().contains("empty"), "{empty}");

    let failing = crate::QueryEngine::new(
        Arc::new(Fixed {
            registry: registry(),
            invocations: Err("partition 3 did not answer within 10s".into()),
            filters: Default::default(),
        }),
        QueryLimits::default(),
    );
    let unavailable = error(&failing, "SELECT * FROM sys_invocation");
    assert!(matches!(unavailable, QueryError::Unavailable(_)), "{unavailable:?}");
    assert!(unavailable.to_string().contains("partition 3 did not answer"), "{unavailable}");
    // A table that needs no partition still answers.
    assert_eq!(rows(&failing, "SELECT name FROM sys_service").len(), 2);
}

#[test]
fn partition_tables_show_state_and_who_holds_a_key() {
    let engine = engine(Ok(vec![invocation("inv_1", "Counter/c-1/add", "suspended")]), QueryLimits::default());
    let state = rows(
        &engine,
        "SELECT key, value_utf8, value_length, key_length FROM state WHERE service_name = 'Counter' ORDER BY key",
    );
    assert_eq!(
        state,
        [
            serde_json::json!({"key": "blob", "value_utf8": null, "value_length": 2, "key_length": 4}),
            serde_json::json!({"key": "count", "value_utf8": "42", "value_length": 2, "key_length": 5}),
        ]
    );
    let blocking = rows(
        &engine,
        "SELECT k.invocation_id, i.status FROM sys_keyed_service_status k JOIN sys_invocation i ON i.id = k.invocation_id \
         WHERE k.service_name = 'Counter' AND k.service_key = 'c-1'",
    );
    assert_eq!(blocking, [serde_json::json!({"invocation_id": "inv_1", "status": "suspended"})]);
    for table in ["sys_journal", "sys_inbox", "sys_idempotency", "sys_promise"] {
        assert!(rows(&engine, &format!("SELECT * FROM {table}")).is_empty(), "{table}");
    }
}

#[test]
fn equalities_on_keys_and_ids_narrow_the_scans() {
    let data = Arc::new(Fixed { registry: registry(), invocations: Ok(Vec::new()), filters: Default::default() });
    let engine = QueryEngine::new(data.clone(), QueryLimits::default());
    rows(&engine, "SELECT * FROM state WHERE service_name = 'Counter' AND service_key = 'c-1' AND value_length > 0");
    rows(&engine, "SELECT * FROM sys_invocation WHERE id = 'inv_1'");
    rows(&engine, "SELECT * FROM sys_journal WHERE 'inv_2' = id");
    rows(&engine, "SELECT * FROM state WHERE service_key LIKE 'c%'");
    let filters = data.filters.lock().unwrap().clone();
    let state =
        RowFilter { service_name: Some("Counter".into()), service_key: Some("c-1".into()), invocation_id: None };
    assert_eq!(filters[0], ("state", state));
    assert!(
        filters.contains(&("sys_invocation", RowFilter { invocation_id: Some("inv_1".into()), ..Default::default() }))
    );
    assert!(filters.contains(&("sys_journal", RowFilter { invocation_id: Some("inv_2".into()), ..Default::default() })));
    assert_eq!(filters.last().unwrap(), &("state", RowFilter::default()), "LIKE is not an equality: {filters:?}");
}

/// The PostgreSQL listener on a free loopback port, serving `engine`.
async fn pg_listener(engine: QueryEngine) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(crate::pg::serve_connection(socket, engine.clone()));
        }
    });
    port
}

#[tokio::test]
async fn a_postgres_driver_binds_parameters_over_the_extended_protocol() {
    let all = vec![
        invocation("inv_1", "Counter/c-1/add", "suspended"),
        invocation("inv_22", "Greeter/greet", "completed"),
        invocation("inv_333", "Greeter/greet", "suspended"),
    ];
    let port = pg_listener(engine(Ok(all), QueryLimits::default())).await;
    let config = format!("host=127.0.0.1 port={port} user=anyone dbname=restate");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);

    // A text parameter, declared by the driver's Parse/Describe as the planner inferred it.
    let statement = client
        .prepare("SELECT id FROM sys_invocation WHERE status = $1 AND target_service_name = $2 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(statement.params(), [tokio_postgres::types::Type::TEXT, tokio_postgres::types::Type::TEXT]);
    let rows = client.query(&statement, &[&"suspended", &"Greeter"]).await.unwrap();
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, ["inv_333"]);

    // A number, sent in binary as the inferred type says.
    let rows = client
        .query("SELECT id FROM sys_invocation WHERE character_length(id) > $1 ORDER BY id", &[&5i64])
        .await
        .unwrap();
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, ["inv_22", "inv_333"]);

    // An error on the server (an unknown column) carries its SQLSTATE, and the connection
    // keeps serving the next statement.
    let error = client.query("SELECT nope FROM sys_invocation WHERE id = $1", &[&"inv_1"]).await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("42000"), "{error}");
    let rows = client.query("SELECT count(*) FROM sys_invocation", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 3);
}
