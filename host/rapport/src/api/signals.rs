//! Relationship signals: an organization's, read at any time; the maintainer's position;
//! a full rebuild.

use axum::Json;
use axum::extract::State;
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
))]
pub(super) async fn organization_signals(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<SignalsParams>,
) -> Result<Json<OrganizationSignals>, ApiError> {
    let id = parse_id_of(&id, RecordKind::Organization)?;
    let at = parse_time(params.at.as_deref(), "at")?.unwrap_or_else(Timestamp::now);
    let signals = state.signals.clone();
    Ok(Json(
        off_workers(move || {
            signals.catch_up()?;
            signals.organization(id, at)
        })
        .await?,
    ))
}

/// Where the signal maintainer stands in the change feed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignalsStatus {
    /// The last change it has read.
    pub position: u64,
    /// The newest change.
    pub newest: u64,
}

/// The signal maintainer's position against the newest change.
#[utoipa::path(get, path = "/v1/signals/status", tag = "signals", security(("bearer" = [])), responses(
    (status = 200, body = SignalsStatus),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn status(State(state): State<AppState>) -> Result<Json<SignalsStatus>, ApiError> {
    let signals = state.signals.clone();
    let (position, newest) = off_workers(move || signals.position()).await?;
    Ok(Json(SignalsStatus { position, newest }))
}

/// Writes every signal aggregate again from the graph alone (the values equal the
/// maintained ones; for a store restored from elsewhere or after a fault).
#[utoipa::path(post, path = "/v1/signals/rebuild", tag = "signals", security(("bearer" = [])), responses(
    (status = 200, body = SignalsStatus),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn rebuild(State(state): State<AppState>) -> Result<Json<SignalsStatus>, ApiError> {
    let signals = state.signals.clone();
    let (position, newest) = off_workers(move || {
        signals.rebuild()?;
        signals.position()
    })
    .await?;
    Ok(Json(SignalsStatus { position, newest }))
}
