//! The HTTP API (axum): record ingest, observations, organizations, people, timelines.
//!
//! Handlers parse and answer; the graph does the work on blocking threads. Every error
//! leaves through [`ApiError`], so clients always get the same JSON error shape.

mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span};

pub use error::ApiError;

use crate::config::{ApiConfig, token_digest};
use crate::graph::model::{DuplicateCandidate, MergeRecord, NodeId, RecordKind, Timestamp, merge_id_text, parse_merge_id};
use crate::graph::{
    ContextQuery, Graph, GraphError, GraphStats, IngestBatch, IngestReport, InvalidPolicy, OrganizationContext,
    OrganizationView, PersonView, TimelinePage,
};
use crate::ops::{self, FieldError, ObservationRecord, Operation, Subject};

/// The source name of records written through the API itself (observations).
pub const API_SOURCE: &str = "api";

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    graph: Arc<Graph>,
    config: Arc<ApiConfig>,
}

impl AppState {
    /// State over a graph.
    pub fn new(graph: Arc<Graph>, config: ApiConfig) -> Self {
        Self { graph, config: Arc::new(config) }
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/ingest", post(ingest))
        .route("/v1/observations", post(add_observation))
        .route("/v1/stats", get(stats))
        .route("/v1/organizations", get(list_organizations))
        .route("/v1/organizations/search", get(search_organizations))
        .route("/v1/organizations/{id}", get(organization))
        .route("/v1/organizations/{id}/context", get(organization_context))
        .route("/v1/organizations/{id}/timeline", get(timeline))
        .route("/v1/merges", get(list_merges).post(create_merge))
        .route("/v1/merges/{id}/undo", post(undo_merge))
        .route("/v1/pins", post(create_pin))
        .route("/v1/duplicates", get(list_duplicates))
        .route("/v1/people/search", get(search_people))
        .route("/v1/people/{id}", get(person))
        .route("/v1/people/{id}/timeline", get(timeline))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .merge(v1)
        .route_layer(middleware::from_fn(trace_request))
        .fallback(|| async { ApiError::NotFound("no such route; the API lives under /v1".to_owned()) })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

async fn trace_request(request: Request, next: Next) -> Response {
    let path = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let span = info_span!("request", method = %request.method(), matched_path = %path);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        info!(status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request served");
    });
    response
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if !state.config.dev_mode {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|token| token_digest(token.trim()));
        if !presented.is_some_and(|digest| state.config.token_digests.contains(&digest)) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// Runs graph work on a blocking thread (the store does synchronous I/O).
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Graph) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    let graph = Arc::clone(&state.graph);
    tokio::task::spawn_blocking(move || work(&graph))
        .await
        .map_err(|err| ApiError::Internal(format!("graph task failed: {err}")))?
        .map_err(Into::into)
}

/// A JSON body whose every rejection is an [`ApiError`] naming the bad field's path.
struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.config.max_body_bytes)
            } else {
                ApiError::field("", rejection.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Self).map_err(|err| {
            let path = err.path().to_string();
            ApiError::field(if path == "." { "" } else { &path }, err.into_inner().to_string())
        })
    }
}

fn parse_id(text: &str, kind: RecordKind) -> Result<NodeId, ApiError> {
    let id: NodeId = text.parse().map_err(|e: crate::graph::model::BadNodeId| ApiError::field("id", e.to_string()))?;
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

async fn ready(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    blocking(&state, |graph| graph.store().get(b"_ready").map_err(GraphError::from)).await?;
    Ok("ready")
}

/// A batch of record operations from one source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestRequest {
    source: String,
    operations: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct IngestResponse {
    applied: usize,
    merges: usize,
}

fn valid_source(source: &str) -> bool {
    !source.is_empty()
        && source.len() <= 64
        && source.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

async fn ingest(State(state): State<AppState>, JsonBody(request): JsonBody<IngestRequest>) -> Result<Json<IngestResponse>, ApiError> {
    if !valid_source(&request.source) {
        return Err(ApiError::field("source", "expected 1 to 64 letters, digits, '-', '_', '.' or ':'"));
    }
    let mut details = Vec::new();
    let mut operations = Vec::with_capacity(request.operations.len());
    for (index, value) in request.operations.into_iter().enumerate() {
        let base = format!("operations[{index}]");
        match ops::operation_from_value(value, &base) {
            Ok(op) => {
                details.extend(op.validate(&base));
                operations.push(op);
            }
            Err(err) => details.push(err),
        }
    }
    if !details.is_empty() {
        return Err(invalid_batch(details));
    }
    let batch = IngestBatch {
        source: request.source,
        operations,
        policy: InvalidPolicy::RejectBatch,
        meta: Vec::new(),
        now: Timestamp::now(),
    };
    let report: IngestReport = blocking(&state, move |graph| graph.ingest(batch)).await?;
    if !report.committed {
        let details = report
            .skipped
            .into_iter()
            .flat_map(|s| {
                s.errors.into_iter().map(move |e| FieldError {
                    path: if e.path.is_empty() { format!("operations[{}]", s.index) } else { format!("operations[{}].{}", s.index, e.path) },
                    message: e.message,
                })
            })
            .collect();
        return Err(invalid_batch(details));
    }
    Ok(Json(IngestResponse { applied: report.applied, merges: report.merges }))
}

fn invalid_batch(details: Vec<FieldError>) -> ApiError {
    ApiError::BadRequest {
        message: format!("the batch was rejected whole: {} invalid field(s); nothing was written", details.len()),
        details,
    }
}

/// An observation written by an employee.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservationRequest {
    about: String,
    text: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    author_email: Option<String>,
    #[serde(default)]
    observed_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize)]
struct Created {
    id: NodeId,
}

async fn add_observation(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ObservationRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let external_id = ulid::Ulid::new().to_string();
    let op = Operation::AddObservation(ObservationRecord {
        external_id: external_id.clone(),
        about: Subject { organization: None, person: None, id: Some(request.about) },
        author_email: request.author_email,
        text: request.text,
        tags: request.tags,
        observed_at: request.observed_at,
    });
    let details = op.validate("");
    if !details.is_empty() {
        return Err(invalid_batch(details));
    }
    let batch = IngestBatch {
        source: API_SOURCE.to_owned(),
        operations: vec![op],
        policy: InvalidPolicy::RejectBatch,
        meta: Vec::new(),
        now: Timestamp::now(),
    };
    let (report, id) = blocking(&state, move |graph| {
        let report = graph.ingest(batch)?;
        let id = graph.resolve(API_SOURCE, RecordKind::Observation, &external_id)?;
        Ok::<_, GraphError>((report, id))
    })
    .await?;
    match (report.committed, id) {
        (true, Some(id)) => Ok((StatusCode::CREATED, Json(Created { id }))),
        _ => {
            let details = report.skipped.into_iter().flat_map(|s| s.errors).collect::<Vec<_>>();
            if details.iter().any(|d| d.path == "about.id") {
                return Err(ApiError::NotFound(details.into_iter().map(|d| d.message).collect::<Vec<_>>().join("; ")));
            }
            Err(invalid_batch(details))
        }
    }
}

async fn stats(State(state): State<AppState>) -> Result<Json<GraphStats>, ApiError> {
    Ok(Json(blocking(&state, Graph::stats).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    next: Option<String>,
}

fn limit(requested: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match requested.unwrap_or(default) {
        0 => Err(ApiError::field("limit", "expected 1 to 1000")),
        n if n > 1000 => Err(ApiError::field("limit", "expected 1 to 1000")),
        n => Ok(n),
    }
}

async fn list_organizations(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<Page<OrganizationView>>, ApiError> {
    let after = query.after.as_deref().map(|a| parse_id(a, RecordKind::Organization)).transpose()?;
    let limit = limit(query.limit, 100)?;
    let items = blocking(&state, move |graph| graph.list_organizations(after, limit)).await?;
    let next = (items.len() == limit).then(|| items.last().map(|o| o.id.to_string())).flatten();
    Ok(Json(Page { items, next }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

async fn search_organizations(State(state): State<AppState>, Query(query): Query<SearchQuery>) -> Result<Json<Page<OrganizationView>>, ApiError> {
    let limit = limit(query.limit, 20)?;
    let items = blocking(&state, move |graph| {
        graph.search(RecordKind::Organization, &query.q, limit)?.into_iter().map(|id| graph.organization(id)).collect()
    })
    .await?;
    Ok(Json(Page { items, next: None }))
}

async fn search_people(State(state): State<AppState>, Query(query): Query<SearchQuery>) -> Result<Json<Page<PersonView>>, ApiError> {
    let limit = limit(query.limit, 20)?;
    let items = blocking(&state, move |graph| {
        graph.search(RecordKind::Person, &query.q, limit)?.into_iter().map(|id| graph.person(id)).collect()
    })
    .await?;
    Ok(Json(Page { items, next: None }))
}

async fn organization(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<OrganizationView>, ApiError> {
    let id = parse_id(&id, RecordKind::Organization)?;
    Ok(Json(blocking(&state, move |graph| graph.organization(id)).await?))
}

async fn person(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PersonView>, ApiError> {
    let id = parse_id(&id, RecordKind::Person)?;
    Ok(Json(blocking(&state, move |graph| graph.person(id)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextParams {
    at: Option<String>,
    recent: Option<usize>,
}

async fn organization_context(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<ContextParams>,
) -> Result<Json<OrganizationContext>, ApiError> {
    let id = parse_id(&id, RecordKind::Organization)?;
    let at = parse_time(params.at.as_deref(), "at")?.unwrap_or_else(Timestamp::now);
    let query = ContextQuery { at, recent: limit(params.recent, 20)? };
    Ok(Json(blocking(&state, move |graph| graph.organization_context(id, query)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineParams {
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

async fn timeline(
    State(state): State<AppState>,
    matched: MatchedPath,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
) -> Result<Json<TimelinePage>, ApiError> {
    let kind = if matched.as_str().starts_with("/v1/people") { RecordKind::Person } else { RecordKind::Organization };
    let id = parse_id(&id, kind)?;
    let from = parse_time(params.from.as_deref(), "from")?;
    let to = parse_time(params.to.as_deref(), "to")?.unwrap_or(Timestamp(i64::MAX / 2));
    let limit = limit(params.limit, 50)?;
    if let Some(before) = &params.before {
        if before.parse::<i64>().is_err() {
            return Err(ApiError::field("before", "expected the `next` value of a previous page"));
        }
    }
    Ok(Json(blocking(&state, move |graph| graph.timeline(id, from, to, params.before.as_deref(), limit)).await?))
}

fn parse_any_id(text: &str, field: &str) -> Result<NodeId, ApiError> {
    text.parse().map_err(|e: crate::graph::model::BadNodeId| ApiError::field(field, e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeListQuery {
    before: Option<String>,
    limit: Option<usize>,
}

async fn list_merges(State(state): State<AppState>, Query(query): Query<MergeListQuery>) -> Result<Json<Page<MergeRecord>>, ApiError> {
    let before = query
        .before
        .as_deref()
        .map(|b| parse_merge_id(b).ok_or_else(|| ApiError::field("before", "expected a merge id (mrg_…)")))
        .transpose()?;
    let limit = limit(query.limit, 100)?;
    let items: Vec<MergeRecord> = blocking(&state, move |graph| graph.merges(before, limit)).await?;
    let next = (items.len() == limit).then(|| items.last().map(|m| merge_id_text(m.id))).flatten();
    Ok(Json(Page { items, next }))
}

/// Two records of the same kind, by id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairRequest {
    a: String,
    b: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn create_merge(State(state): State<AppState>, JsonBody(request): JsonBody<PairRequest>) -> Result<(StatusCode, Json<MergeRecord>), ApiError> {
    let (a, b) = (parse_any_id(&request.a, "a")?, parse_any_id(&request.b, "b")?);
    let reason = request.reason.unwrap_or_else(|| "merged by hand".to_owned());
    let record = blocking(&state, move |graph| graph.merge_manually(a, b, reason, Timestamp::now())).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

async fn undo_merge(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<MergeRecord>, ApiError> {
    let id = parse_merge_id(&id).ok_or_else(|| ApiError::field("id", "expected a merge id (mrg_…)"))?;
    Ok(Json(blocking(&state, move |graph| graph.unmerge(id, Timestamp::now())).await?))
}

async fn create_pin(State(state): State<AppState>, JsonBody(request): JsonBody<PairRequest>) -> Result<StatusCode, ApiError> {
    if request.reason.is_some() {
        return Err(ApiError::field("reason", "pins take no reason"));
    }
    let (a, b) = (parse_any_id(&request.a, "a")?, parse_any_id(&request.b, "b")?);
    blocking(&state, move |graph| graph.pin_apart(a, b)).await?;
    Ok(StatusCode::CREATED)
}

async fn list_duplicates(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<Page<DuplicateCandidate>>, ApiError> {
    if query.after.is_some() {
        return Err(ApiError::field("after", "the review list is not paged; use limit"));
    }
    let limit = limit(query.limit, 100)?;
    let items = blocking(&state, move |graph| graph.duplicates(limit)).await?;
    Ok(Json(Page { items, next: None }))
}
