//! The PostgreSQL wire protocol in front of the [`QueryEngine`] (the `pgwire` crate): `psql`
//! and drivers connect with any user and database name (as Restate does: the port belongs
//! on an operators' network) and run queries over the simple and the extended protocol
//! (parameters `$1`, `$2`, ... bound by type). Errors carry a SQLSTATE and the engine's message; a client that
//! sends garbage or goes away mid-query affects only its own connection.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Int16Type, Int32Type, Int64Type, Int8Type, Schema, UInt16Type, UInt32Type, UInt8Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::{stream, Sink};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, QueryResponse, Response,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpStream;

use crate::engine::{QueryEngine, QueryError, QueryResult};

/// Serves one PostgreSQL client connection until it ends.
pub async fn serve_connection(socket: TcpStream, engine: QueryEngine) {
    let peer = socket.peer_addr().ok();
    let handlers =
        Arc::new(Handlers { backend: Arc::new(Backend { engine, parser: Arc::new(NoopQueryParser::new()) }) });
    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
        tracing::debug!(?peer, "pgsql connection ended: {e}");
    }
}

struct Handlers {
    backend: Arc<Backend>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.backend.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.backend.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.backend.clone()
    }
}

struct Backend {
    engine: QueryEngine,
    parser: Arc<NoopQueryParser>,
}

/// Any user, any database, no password.
#[async_trait]
impl NoopStartupHandler for Backend {}

fn user_error(error: &QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), error.sqlstate().to_owned(), error.to_string())))
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if query.trim().trim_end_matches(';').trim().is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let result = self.engine.execute(query).await.map_err(|e| user_error(&e))?;
        Ok(vec![Response::Query(encode(&result, &Format::UnifiedText)?)])
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        statement: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = self.describe(&statement.statement, &Format::UnifiedText).await?;
        let parameters = self.parameter_types(&statement.statement, &statement.parameter_types).await?;
        Ok(DescribeStatementResponse::new(parameters, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(DescribePortalResponse::new(self.describe(&portal.statement.statement, &portal.result_column_format).await?))
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = &portal.statement.statement;
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Ok(Response::EmptyQuery);
        }
        // Text values go to the engine as sent (it reads each as its placeholder's type);
        // only a binary value whose type the client did not declare needs the statement
        // planned here to learn it.
        let binary = |i: usize| portal.parameter_format.is_binary(i);
        let declared = &portal.statement.parameter_types;
        let undeclared = |i: usize| declared.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN).is_none();
        let types = if (0..portal.parameter_len()).any(|i| binary(i) && undeclared(i)) {
            self.parameter_types(sql, declared).await?
        } else {
            declared.iter().map(|t| t.clone().unwrap_or(Type::TEXT)).collect()
        };
        let params = (0..portal.parameter_len())
            .map(|i| match binary(i) {
                true => parameter_text(portal, i, types.get(i).unwrap_or(&Type::TEXT)),
                false => portal.parameter::<String>(i, &Type::TEXT),
            })
            .collect::<PgWireResult<Vec<_>>>()?;
        let result = self.engine.execute_with(sql, &params).await.map_err(|e| user_error(&e))?;
        Ok(Response::Query(encode(&result, &portal.result_column_format)?))
    }
}

/// Binary parameter `i` of `portal` as text (`None` for NULL), decoded as `ty` (the
/// client's declared type, else the planner's).
fn parameter_text(portal: &Portal<String>, i: usize, ty: &Type) -> PgWireResult<Option<String>> {
    Ok(match *ty {
        Type::INT2 => portal.parameter::<i16>(i, ty)?.map(|v| v.to_string()),
        Type::INT4 => portal.parameter::<i32>(i, ty)?.map(|v| v.to_string()),
        Type::INT8 => portal.parameter::<i64>(i, ty)?.map(|v| v.to_string()),
        Type::FLOAT4 => portal.parameter::<f32>(i, ty)?.map(|v| v.to_string()),
        Type::FLOAT8 => portal.parameter::<f64>(i, ty)?.map(|v| v.to_string()),
        Type::BOOL => portal.parameter::<bool>(i, ty)?.map(|v| v.to_string()),
        _ => portal.parameter::<String>(i, &Type::TEXT)?,
    })
}

impl Backend {
    /// The types of `sql`'s parameters: the client's (Parse) where it gave one, else the
    /// planner's inference, else text.
    async fn parameter_types(&self, sql: &str, declared: &[Option<Type>]) -> PgWireResult<Vec<Type>> {
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Ok(Vec::new());
        }
        let inferred = self.engine.parameter_types(sql).await.map_err(|e| user_error(&e))?;
        Ok(inferred
            .iter()
            .enumerate()
            .map(|(i, ty)| match declared.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN) {
                Some(declared) => declared,
                None => ty.as_ref().map_or(Type::TEXT, pg_type),
            })
            .collect())
    }

    async fn describe(&self, sql: &str, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Ok(Vec::new());
        }
        let schema = self.engine.describe(sql).await.map_err(|e| user_error(&e))?;
        Ok(fields(&schema, format))
    }
}

/// The PostgreSQL type a column is sent as: integers, booleans, floats and bytes as
/// themselves; everything else (text, timestamps, lists) as text. `UInt64` values can
/// exceed `int8`, so they go as `numeric`.
fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Type::INT8,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Type::FLOAT8,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA,
        _ => Type::TEXT,
    }
}

fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let pg = pg_type(field.data_type());
            // numeric goes as text whatever the client asked (its binary form is not ours to make).
            let format = if pg == Type::NUMERIC { FieldFormat::Text } else { format.format_for(i) };
            FieldInfo::new(field.name().clone(), None, None, pg, format)
        })
        .collect()
}

/// `result` as PostgreSQL rows, each value in its column's type and format.
fn encode(result: &QueryResult, format: &Format) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields(&result.schema, format));
    let mut rows: Vec<PgWireResult<DataRow>> = Vec::with_capacity(result.num_rows());
    let options = FormatOptions::default();
    for batch in &result.batches {
        let mut encoder = DataRowEncoder::new(fields.clone());
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        for row in 0..batch.num_rows() {
            for (column, formatter) in batch.columns().iter().zip(&formatters) {
                encode_value(&mut encoder, column.as_ref(), formatter, row)?;
            }
            rows.push(Ok(encoder.take_row()));
        }
    }
    Ok(QueryResponse::new(fields, stream::iter(rows)))
}

fn encode_value(
    encoder: &mut DataRowEncoder,
    column: &dyn Array,
    formatter: &ArrayFormatter<'_>,
    row: usize,
) -> PgWireResult<()> {
    if column.is_null(row) {
        return encoder.encode_field(&None::<i64>);
    }
    match column.data_type() {
        DataType::Boolean => encoder.encode_field(&column.as_boolean().value(row)),
        DataType::Int8 => encoder.encode_field(&i64::from(column.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => encoder.encode_field(&i64::from(column.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => encoder.encode_field(&i64::from(column.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => encoder.encode_field(&column.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => encoder.encode_field(&i64::from(column.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => encoder.encode_field(&i64::from(column.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => encoder.encode_field(&i64::from(column.as_primitive::<UInt32Type>().value(row))),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let text = formatter.value(row).to_string();
            encoder.encode_field(&text.parse::<f64>().unwrap_or(f64::NAN))
        }
        DataType::Binary => encoder.encode_field(&column.as_binary::<i32>().value(row)),
        DataType::LargeBinary => encoder.encode_field(&column.as_binary::<i64>().value(row)),
        DataType::BinaryView => encoder.encode_field(&column.as_binary_view().value(row)),
        _ => encoder.encode_field(&formatter.value(row).to_string()),
    }
}
