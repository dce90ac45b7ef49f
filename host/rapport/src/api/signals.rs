//! Relationship signals: an organization's, read at any time; the maintainer's position;
//! a full rebuild.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, ErrorBody, Path, Query, off_workers, parse_id_of, parse_time};
use rapport_graph::model::{RecordKind, Timestamp};
use rapport_ops::NodeIdText;
use rapport_signals::{OrganizationSignals, SignalsError};

impl From<SignalsError> for ApiError {
    fn from(err: SignalsError) -> Self {
        match err {
            SignalsError::Graph(err) => err.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SignalsParams {
    /// The time to read the signals at (RFC 3339; default now).
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
}

/// An organization's relationship signals at a time: recency, two-way touches, touches in
/// windows and their trend, breadth and each employee's explained strength, deals and
/// revenue. The feed is read to its end first, so the answer includes every committed write.
#[utoipa::path(get, path = "/v1/organizations/{id}/signals", tag = "signals", params(("id" = NodeIdText, Path, description = "org_…"), SignalsParams), security(("bearer" = [])), responses(
    (status = 200, body = OrganizationSignals),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a rebuild is under way; ask again when `/v1/signals/status` says it is done", body = ErrorBody),
))]
pub(super) async fn organization_signals(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<SignalsParams>,
) -> Result<Json<OrganizationSignals>, ApiError> {
    let id = parse_id_of(&id, RecordKind::Organization)?;
    let at = parse_time(params.at.as_deref(), "at")?.unwrap_or_else(Timestamp::now);
    let signals = state.signals.clone();
    if signals.is_rebuilding() {
        return Err(rebuilding());
    }
    Ok(Json(
        off_workers(move || {
            signals.catch_up()?;
            signals.organization(id, at)
        })
        .await?,
    ))
}

fn rebuilding() -> ApiError {
    ApiError::Conflict("the signals are being rebuilt; ask again when GET /v1/signals/status says `rebuilding: false`".to_owned())
}

/// Where the signal maintainer stands in the change feed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignalsStatus {
    /// The last change it has read.
    pub position: u64,
    /// The newest change.
    pub newest: u64,
    /// A rebuild is under way.
    pub rebuilding: bool,
}

async fn status_of(state: &AppState) -> Result<SignalsStatus, ApiError> {
    let signals = state.signals.clone();
    let rebuilding = signals.is_rebuilding();
    let (position, newest) = off_workers(move || signals.position()).await?;
    Ok(SignalsStatus { position, newest, rebuilding })
}

/// The signal maintainer's position against the newest change, and whether a rebuild is
/// under way.
#[utoipa::path(get, path = "/v1/signals/status", tag = "signals", security(("bearer" = [])), responses(
    (status = 200, body = SignalsStatus),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn status(State(state): State<AppState>) -> Result<Json<SignalsStatus>, ApiError> {
    Ok(Json(status_of(&state).await?))
}

/// Starts writing every signal aggregate again from the graph alone (the values equal the
/// maintained ones; for a store restored from elsewhere or after a fault), unless a rebuild
/// is under way. `/v1/signals/status` says when it is done.
#[utoipa::path(post, path = "/v1/signals/rebuild", tag = "signals", security(("bearer" = [])), responses(
    (status = 202, description = "started, or already under way", body = SignalsStatus),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn rebuild(State(state): State<AppState>) -> Result<(StatusCode, Json<SignalsStatus>), ApiError> {
    state.signals.start_rebuild();
    Ok((StatusCode::ACCEPTED, Json(status_of(&state).await?)))
}
