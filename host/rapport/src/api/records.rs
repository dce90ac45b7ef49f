//! Writing: record-operation batches and employees' observations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, ErrorBody, JsonBody, blocking, parse_id};
use rapport_graph::GraphError;
use rapport_graph::model::{NodeId, RecordKind};
use rapport_ops::{
    self as ops, Email, FieldError, IngestBatch, IngestReport, InvalidPolicy, NodeIdText, ObservationRecord, Operation, Subject, Tag, Text,
};

/// The source name of records written through the API itself (observations).
const API_SOURCE: &str = "api";

/// A batch of record operations from one source, applied atomically.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestRequest {
    /// The connection the records come from: 1 to 64 letters, digits, `-`, `_`, `.` or `:`.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$", min_length = 1, max_length = 64)]
    source: String,
    /// The operations, applied in order.
    #[schema(value_type = Vec<Operation>)]
    operations: Vec<serde_json::Value>,
}

/// What a committed batch did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct IngestResponse {
    /// Operations applied.
    applied: usize,
    /// Identity merges the batch caused.
    merges: usize,
}

fn invalid_batch(details: Vec<FieldError>) -> ApiError {
    ApiError::BadRequest {
        message: format!("the batch was rejected whole: {} invalid field(s); nothing was written", details.len()),
        details,
    }
}

fn unapplicable_batch(details: Vec<FieldError>) -> ApiError {
    ApiError::Unprocessable {
        message: format!("the batch was rejected whole: {} operation field(s) cannot be applied; nothing was written", details.len()),
        details,
    }
}

/// Applies a batch of record operations, all or nothing.
///
/// Every operation is parsed and validated first; if any field is bad, nothing is written
/// and the answer lists the path of each bad field.
#[utoipa::path(post, path = "/v1/ingest", tag = "records", request_body = IngestRequest, security(("bearer" = [])), responses(
    (status = 200, description = "the batch is committed and durable", body = IngestResponse),
    (status = 400, description = "invalid batch; nothing was written", body = ErrorBody),
    (status = 422, description = "well-formed, but an operation cannot be applied (an interval ends before it starts, a reference to no record); nothing was written", body = ErrorBody),
    (status = 401, description = "missing or invalid token", body = ErrorBody),
    (status = 413, description = "body over api.max_body_bytes", body = ErrorBody),
))]
pub(super) async fn ingest(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<IngestRequest>,
) -> Result<Json<IngestResponse>, ApiError> {
    if !ops::is_valid_source(&request.source) {
        return Err(ApiError::field("source", ops::SOURCE_RULE));
    }
    let mut details = Vec::new();
    let mut operations = Vec::with_capacity(request.operations.len());
    for (index, value) in request.operations.into_iter().enumerate() {
        let base = format!("operations[{index}]");
        match ops::operation_from_value(value, &base) {
            Ok(op) => {
                details.extend(op.validate(&base, state.graph.limits()));
                operations.push(op);
            }
            Err(err) => details.push(err),
        }
    }
    if !details.is_empty() {
        return Err(invalid_batch(details));
    }
    let batch = IngestBatch { policy: InvalidPolicy::RejectBatch, ..IngestBatch::trusted(request.source, operations) };
    let report: IngestReport = blocking(&state, move |graph| graph.ingest(batch)).await?;
    if !report.committed {
        let details = report
            .skipped
            .into_iter()
            .flat_map(|s| {
                s.errors.into_iter().map(move |e| FieldError {
                    path: if e.path.is_empty() {
                        format!("operations[{}]", s.index)
                    } else {
                        format!("operations[{}].{}", s.index, e.path)
                    },
                    message: e.message,
                })
            })
            .collect();
        return Err(unapplicable_batch(details));
    }
    Ok(Json(IngestResponse { applied: report.applied, merges: report.merges }))
}

/// An observation written by an employee.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ObservationRequest {
    /// The organization or person it is about (`org_…` or `per_…`).
    #[schema(value_type = NodeIdText)]
    about: String,
    /// What was noticed.
    #[schema(value_type = Text)]
    text: String,
    /// Tags: decision-style, risk, communication-preference, pain, reaction-speed, price-sensitivity, motive, ...
    #[serde(default)]
    #[schema(value_type = Vec<Tag>, max_items = 1000)]
    tags: Vec<String>,
    /// The author's email address.
    #[serde(default)]
    #[schema(value_type = Option<Email>)]
    author_email: Option<String>,
    /// When it was observed (defaults to now).
    #[serde(default)]
    observed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The id of a created record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Created {
    id: NodeId,
}

/// Records an observation about an organization or a person.
#[utoipa::path(post, path = "/v1/observations", tag = "records", request_body = ObservationRequest, security(("bearer" = [])), responses(
    (status = 201, description = "recorded", body = Created),
    (status = 400, description = "invalid observation", body = ErrorBody),
    (status = 422, description = "well-formed, but cannot be applied", body = ErrorBody),
    (status = 401, description = "missing or invalid token", body = ErrorBody),
    (status = 404, description = "no such organization or person", body = ErrorBody),
))]
pub(super) async fn add_observation(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ObservationRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    // A malformed id is the client's mistake (400); only a well-formed one can be unknown (404).
    let about = parse_id(&request.about, "about")?;
    if !matches!(about.kind, RecordKind::Organization | RecordKind::Person) {
        return Err(ApiError::unprocessable("about", "expected the id of an organization (org_…) or a person (per_…)"));
    }
    let external_id = ulid::Ulid::new().to_string();
    let op = Operation::AddObservation(ObservationRecord {
        external_id: external_id.clone(),
        about: Subject { organization: None, person: None, id: Some(request.about) },
        author_email: request.author_email,
        text: request.text,
        tags: request.tags,
        observed_at: request.observed_at,
    });
    let details = op.validate("", state.graph.limits());
    if !details.is_empty() {
        return Err(invalid_batch(details));
    }
    let batch = IngestBatch { policy: InvalidPolicy::RejectBatch, ..IngestBatch::trusted(API_SOURCE, vec![op]) };
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
            Err(unapplicable_batch(details))
        }
    }
}
