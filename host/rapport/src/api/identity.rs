//! Identity: the merge log, undoing and making merges, pins, the duplicate review list.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, AppState, ErrorBody, JsonBody, Page, Path, Query, blocking, limit, parse_id};
use rapport_graph::model::{MergeId, MergeRecord, NodeId, Timestamp};
use rapport_graph::{DEFAULT_MIN_SCORE, Suggestion};
use rapport_ops::{Label, MergeIdText, NodeIdText};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeListQuery {
    /// Continue before this merge (the `next` of the previous page).
    #[param(value_type = Option<MergeIdText>)]
    before: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The merge log, newest first, undone merges included.
#[utoipa::path(get, path = "/v1/merges", tag = "identity", params(MergeListQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<MergeRecord>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn list_merges(
    State(state): State<AppState>,
    Query(query): Query<MergeListQuery>,
) -> Result<Json<Page<MergeRecord>>, ApiError> {
    let before = query
        .before
        .as_deref()
        .map(|b| b.parse::<MergeId>().map_err(|_| ApiError::field("before", "expected a merge id (mrg_…)")))
        .transpose()?;
    let limit = limit(query.limit, 100, "limit")?;
    let items: Vec<MergeRecord> = blocking(&state, move |graph| graph.merges(before, limit)).await?;
    let next = (items.len() == limit).then(|| items.last().map(|m| m.id.to_string())).flatten();
    Ok(Json(Page { items, next }))
}

/// Two records of the same kind.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeRequest {
    /// One record (`org_…` or `per_…`).
    #[schema(value_type = NodeIdText)]
    a: String,
    /// The other record, of the same kind.
    #[schema(value_type = NodeIdText)]
    b: String,
    /// Why, for the merge log (default "merged by hand").
    #[serde(default)]
    #[schema(value_type = Option<Label>)]
    reason: Option<String>,
}

/// Merges two organizations or two people by hand (e.g. from the review list).
#[utoipa::path(post, path = "/v1/merges", tag = "identity", request_body = MergeRequest, security(("bearer" = [])), responses(
    (status = 201, body = MergeRecord),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "already merged, or pinned apart", body = ErrorBody),
    (status = 422, description = "the two records are of different kinds", body = ErrorBody),
))]
pub(super) async fn create_merge(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<MergeRequest>,
) -> Result<(StatusCode, Json<MergeRecord>), ApiError> {
    let (a, b) = (parse_id(&request.a, "a")?, parse_id(&request.b, "b")?);
    let reason = request.reason.unwrap_or_else(|| "merged by hand".to_owned());
    let record = blocking(&state, move |graph| graph.merge_manually(a, b, reason, Timestamp::now())).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Undoes a merge. The two records are pinned apart so that resolution does not redo it.
#[utoipa::path(post, path = "/v1/merges/{id}/undo", tag = "identity", params(("id" = MergeIdText, Path, description = "mrg_…")), security(("bearer" = [])), responses(
    (status = 200, body = MergeRecord),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "already undone", body = ErrorBody),
))]
pub(super) async fn undo_merge(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<MergeRecord>, ApiError> {
    let id = id.parse::<MergeId>().map_err(|_| ApiError::field("id", "expected a merge id (mrg_…)"))?;
    Ok(Json(blocking(&state, move |graph| graph.unmerge(id, Timestamp::now())).await?))
}

/// Two records of the same kind: to pin apart, or a suggestion to accept or reject.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordPair {
    /// One record.
    #[schema(value_type = NodeIdText)]
    a: String,
    /// The other record, of the same kind.
    #[schema(value_type = NodeIdText)]
    b: String,
}

impl RecordPair {
    /// The two ids, each error naming its field.
    fn ids(&self) -> Result<(NodeId, NodeId), ApiError> {
        Ok((parse_id(&self.a, "a")?, parse_id(&self.b, "b")?))
    }
}

/// Pins two records apart: they will never be merged (dismisses a review entry).
#[utoipa::path(post, path = "/v1/pins", tag = "identity", request_body = RecordPair, security(("bearer" = [])), responses(
    (status = 201, description = "pinned"),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "already merged", body = ErrorBody),
    (status = 422, description = "the two records are of different kinds", body = ErrorBody),
))]
pub(super) async fn create_pin(State(state): State<AppState>, JsonBody(request): JsonBody<RecordPair>) -> Result<StatusCode, ApiError> {
    let (a, b) = request.ids()?;
    blocking(&state, move |graph| graph.pin_apart(a, b)).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewQuery {
    /// At most this many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Leave out pairs scoring under this, 0 to 1 (default 0.5; 0 lists every candidate).
    #[param(minimum = 0, maximum = 1)]
    min_score: Option<f64>,
}

/// The review list: records that may be one, scored from the graph as it stands, best
/// first, each with its case and reasons.
#[utoipa::path(get, path = "/v1/duplicates", tag = "identity", params(ReviewQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<Suggestion>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn list_duplicates(
    State(state): State<AppState>,
    Query(query): Query<ReviewQuery>,
) -> Result<Json<Page<Suggestion>>, ApiError> {
    let limit = limit(query.limit, 100, "limit")?;
    let min_score = match query.min_score {
        None => DEFAULT_MIN_SCORE,
        Some(score) if (0.0..=1.0).contains(&score) => score,
        Some(_) => return Err(ApiError::field("min_score", "expected a score from 0 to 1")),
    };
    let items = blocking(&state, move |graph| graph.duplicates(min_score, limit)).await?;
    Ok(Json(Page { items, next: None }))
}

/// Accepts a suggestion: merges the two records' clusters; for a job change, also ends the
/// old employment where the new one starts (a record of the operator's review).
#[utoipa::path(post, path = "/v1/duplicates/accept", tag = "identity", request_body = RecordPair, security(("bearer" = [])), responses(
    (status = 201, body = MergeRecord),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "already merged, or pinned apart", body = ErrorBody),
    (status = 422, description = "the two records are of different kinds", body = ErrorBody),
))]
pub(super) async fn accept_duplicate(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RecordPair>,
) -> Result<(StatusCode, Json<MergeRecord>), ApiError> {
    let (a, b) = request.ids()?;
    let record = blocking(&state, move |graph| graph.accept_duplicate(a, b, Timestamp::now())).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Rejects a suggestion: the two records are pinned apart and never suggested again.
#[utoipa::path(post, path = "/v1/duplicates/reject", tag = "identity", request_body = RecordPair, security(("bearer" = [])), responses(
    (status = 201, description = "pinned apart"),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "already merged", body = ErrorBody),
    (status = 422, description = "the two records are of different kinds", body = ErrorBody),
))]
pub(super) async fn reject_duplicate(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RecordPair>,
) -> Result<StatusCode, ApiError> {
    let (a, b) = request.ids()?;
    blocking(&state, move |graph| graph.reject_duplicate(a, b)).await?;
    Ok(StatusCode::CREATED)
}
