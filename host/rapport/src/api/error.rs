//! The API's one error type and its JSON body: `{"error": code, "message": …, "details": […]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use rapport_graph::{GraphError, IdentityError};
use rapport_ops::{FieldError, excerpt};

/// Longest message or path an error answer carries, in characters.
const MAX_ECHO_CHARS: usize = 500;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `details` lists each bad field.
    #[error("{message}")]
    BadRequest {
        /// Summary.
        message: String,
        /// Each bad field.
        details: Vec<FieldError>,
    },
    /// The request is well formed, as the OpenAPI document describes it, but says
    /// something the server cannot apply: a rule across fields (an interval's order, a cron
    /// expression's meaning) or a reference to what the graph does not hold.
    #[error("{message}")]
    Unprocessable {
        /// Summary.
        message: String,
        /// Each field concerned.
        details: Vec<FieldError>,
    },
    /// No or wrong token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Nothing has this id.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed.
    #[error("request body exceeds the limit of {0} bytes (api.max_body_bytes)")]
    PayloadTooLarge(usize),
    /// The client took too long to send the body.
    #[error("the request body did not arrive within {} s (api.body_read_timeout_secs)", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    /// Something failed on our side; the cause is logged, not answered.
    #[error("internal error")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: bad_request, unprocessable, unauthorized, not_found, conflict, payload_too_large, request_timeout, internal.
    error: &'static str,
    /// What was wrong, for people.
    message: String,
    /// For bad requests: each bad field with its JSON path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<FieldError>,
}

impl ApiError {
    /// A bad request about one field.
    pub fn field(path: &str, message: impl Into<String>) -> Self {
        let detail = FieldError { path: path.to_owned(), message: message.into() };
        Self::BadRequest { message: format!("invalid request: {detail}"), details: vec![detail] }
    }

    /// A well-formed request that cannot be applied, because of one field.
    pub fn unprocessable(path: &str, message: impl Into<String>) -> Self {
        let detail = FieldError { path: path.to_owned(), message: message.into() };
        Self::Unprocessable { message: format!("cannot apply the request: {detail}"), details: vec![detail] }
    }
}

impl From<GraphError> for ApiError {
    fn from(err: GraphError) -> Self {
        match err {
            GraphError::NotFound(id) => Self::NotFound(format!("no {} with id {id}", id.kind.id_prefix())),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::Graph(err) => err.into(),
            IdentityError::UnknownMerge(_) => Self::NotFound(err.to_string()),
            IdentityError::KindMismatch(..) => Self::unprocessable("b", err.to_string()),
            IdentityError::AlreadyUndone(_) | IdentityError::AlreadyMerged(..) | IdentityError::Pinned(..) => {
                Self::Conflict(err.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        // Messages may quote what the client sent: long quotes are cut, so an answer
        // stays small whatever the request held.
        let message = excerpt(&self.to_string(), MAX_ECHO_CHARS).into_owned();
        let details = match self {
            Self::BadRequest { details, .. } | Self::Unprocessable { details, .. } => details
                .into_iter()
                .map(|d| FieldError {
                    path: excerpt(&d.path, MAX_ECHO_CHARS).into_owned(),
                    message: excerpt(&d.message, MAX_ECHO_CHARS).into_owned(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut response = (status, Json(ErrorBody { error: code, message, details })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
