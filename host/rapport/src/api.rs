//! The HTTP API (axum): record ingest, observations, organizations, people, timelines,
//! identity merges — and the OpenAPI document generated from the same handlers.
//!
//! Handlers parse and answer; the graph does the work on blocking threads. Every route is
//! registered through [`OpenApiRouter`], so the served routes and the document cannot
//! drift apart. Every error leaves through [`ApiError`], one JSON shape for clients.

mod error;
mod extract;
mod identity;
mod plugins;
mod queries;
mod records;
mod signals;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
use extract::{JsonBody, Path, Query};

use crate::config::{ApiConfig, token_digest};
use crate::metrics::{METRICS, RequestLabels, RouteLabels};
use rapport_graph::model::{BadNodeId, NodeId, RecordKind, Timestamp};
use rapport_graph::{Graph, GraphError};
use rapport_plugin_host::PluginHost;
use rapport_signals::Signals;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    graph: Arc<Graph>,
    plugins: Arc<PluginHost>,
    signals: Arc<Signals>,
    config: Arc<ApiConfig>,
}

impl AppState {
    /// State over a graph, the plugin runtime writing into it and the signals kept from it.
    pub fn new(graph: Arc<Graph>, plugins: Arc<PluginHost>, signals: Arc<Signals>, config: ApiConfig) -> Self {
        Self { graph, plugins, signals, config: Arc::new(config) }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Rapport API", description = "The client-context graph: ingest record operations, read organizations, people, timelines and relationship context. Length and item limits shown on records are the defaults of the server's `[records]` configuration."),
    modifiers(&BearerAuth),
    // Referenced only from parameters, which do not register their schemas.
    components(schemas(rapport_ops::MergeIdText, rapport_ops::TimelineCursorText, rapport_ops::NodeIdText, rapport_ops::Tag)),
    tags(
        (name = "records", description = "Writing record operations and observations"),
        (name = "graph", description = "Organizations, people, context and timelines"),
        (name = "identity", description = "Merges, pins and the duplicate review list"),
        (name = "signals", description = "Relationship signals kept current from the change feed"),
        (name = "plugins", description = "Installed connector plugins, their runs and cursors"),
        (name = "operations", description = "Health and the API description"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// Routes that need a token.
fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(records::ingest))
        .routes(routes!(records::add_observation))
        .routes(routes!(queries::stats))
        .routes(routes!(queries::changes))
        .routes(routes!(queries::list_organizations))
        .routes(routes!(queries::search_organizations))
        .routes(routes!(queries::organization))
        .routes(routes!(queries::organization_context))
        .routes(routes!(queries::organization_timeline))
        .routes(routes!(queries::organization_observations))
        .routes(routes!(signals::organization_signals))
        .routes(routes!(signals::status))
        .routes(routes!(signals::rebuild))
        .routes(routes!(queries::list_people))
        .routes(routes!(queries::person_observations))
        .routes(routes!(queries::search_people))
        .routes(routes!(queries::person))
        .routes(routes!(queries::person_timeline))
        .routes(routes!(identity::list_merges, identity::create_merge))
        .routes(routes!(identity::undo_merge))
        .routes(routes!(identity::create_pin))
        .routes(routes!(identity::list_duplicates))
        .routes(routes!(identity::accept_duplicate))
        .routes(routes!(identity::reject_duplicate))
        .routes(routes!(plugins::list_plugins))
        .routes(routes!(plugins::install_package, plugins::upgrade_package))
        .routes(routes!(plugins::add_instance))
        .routes(routes!(plugins::start_run, plugins::list_runs))
        .routes(routes!(plugins::run))
        .routes(routes!(plugins::uninstall))
        .routes(routes!(plugins::set_config))
        .routes(routes!(plugins::reset_cursor))
        .routes(routes!(plugins::run_logs))
        .routes(routes!(plugins::set_schedule, plugins::remove_schedule))
        .routes(routes!(plugins::set_enabled))
}

/// Routes open to anyone: probes and the API description.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics)).routes(routes!(openapi_document))
}

/// The OpenAPI document of every route, built once.
static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    let (_, protected) = protected_routes().split_for_parts();
    let (_, public) = public_routes().split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(protected);
    doc.merge(public);
    // Serializing a document built from static annotations cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
});

/// The OpenAPI document (JSON) describing every route [`router`] serves.
pub fn openapi_json() -> &'static str {
    &OPENAPI
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let (protected, _) = protected_routes().split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    let protected = protected.route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    public
        .merge(protected)
        .route_layer(middleware::from_fn(trace_request))
        .fallback(|| async { ApiError::NotFound("no such route; see /v1/openapi.json".to_owned()) })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Serves the API until `shutdown` resolves, then lets the requests in progress finish.
///
/// At most `api.max_connections` connections are served at once (the others wait in the
/// listen queue), and a client that is slow to send its headers, or idle between requests,
/// for longer than `api.header_read_timeout_secs` is disconnected, so slow clients cannot
/// hold the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let config = Arc::clone(&state.config);
    let service = hyper_util::service::TowerToHyperService::new(router(state));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
    let places = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection only.
            let _ = connection.await;
            drop(place);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

async fn trace_request(request: Request, next: Next) -> Response {
    let path = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let span = info_span!("request", %method, matched_path = %path);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    span.in_scope(|| info!(status = response.status().as_u16(), elapsed_ms = elapsed.as_millis() as u64, "request served"));
    let metrics = &*METRICS;
    let route = RouteLabels { method: method_label(&method).to_owned(), route: path };
    metrics.http_duration.get_or_create(&route).observe(elapsed.as_secs_f64());
    let labels = RequestLabels { method: route.method, route: route.route, status: response.status().as_u16() };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}

/// The method as a metric label: the standard methods by name, anything else as `other`,
/// so made-up methods cannot create new series.
fn method_label(method: &axum::http::Method) -> &'static str {
    const STANDARD: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    STANDARD.into_iter().find(|m| *m == method.as_str()).unwrap_or("other")
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if !state.config.dev_mode {
        let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token).map(token_digest);
        if !presented.is_some_and(|digest| state.config.token_digests.iter().any(|known| same_digest(known, &digest))) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// The token of an `Authorization: Bearer …` value; the scheme is case-insensitive
/// (RFC 9110, section 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers reads.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready", body = String),
    (status = 500, description = "the store does not answer", body = ErrorBody),
))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    blocking(&state, |graph| graph.store().get(b"_ready").map_err(GraphError::from)).await?;
    Ok("ready")
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "metrics", content_type = "text/plain", body = String)))]
async fn metrics() -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], METRICS.encode())
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_document() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

/// Runs graph work on a blocking thread (the store does synchronous I/O).
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Graph) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    let graph = Arc::clone(&state.graph);
    off_workers(move || work(&graph)).await
}

/// Runs `work` (store reads and durable writes) on the blocking pool, not an async worker.
async fn off_workers<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| ApiError::Internal(format!("store task failed: {err}")))?.map_err(Into::into)
}

/// A page of results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Page<T> {
    items: Vec<T>,
    /// Pass back to get the next page; absent on the last one.
    next: Option<String>,
}

fn parse_id(text: &str, field: &str) -> Result<NodeId, ApiError> {
    text.parse().map_err(|e: BadNodeId| ApiError::field(field, e.to_string()))
}

fn parse_id_of(text: &str, kind: RecordKind) -> Result<NodeId, ApiError> {
    let id = parse_id(text, "id")?;
    if id.kind != kind {
        return Err(ApiError::NotFound(format!("no {} with id {id}", kind.id_prefix())));
    }
    Ok(id)
}

fn parse_time(text: Option<&str>, field: &str) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| Timestamp::from(t.to_utc()))
            .map_err(|_| ApiError::field(field, "expected an RFC 3339 time such as 2026-05-01T09:00:00Z"))
    })
    .transpose()
}

/// Largest page or count a request may ask for.
const MAX_LIMIT: usize = 1000;

/// A page size or count given as `field`, 1 to [`MAX_LIMIT`].
fn limit(requested: Option<usize>, default: usize, field: &str) -> Result<usize, ApiError> {
    match requested.unwrap_or(default) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::field(field, format!("expected 1 to {MAX_LIMIT}"))),
    }
}
