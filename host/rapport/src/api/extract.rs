//! Request extractors whose every rejection is an [`ApiError`] naming the bad parameter or
//! field, so clients see one JSON error shape whatever part of the request was wrong.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use rapport_ops::excerpt;

/// Path parameters (`/v1/organizations/{id}`).
#[derive(Debug)]
pub(super) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => Err(match err.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => ApiError::field(&key, "not valid UTF-8 once percent-decoded"),
                ErrorKind::ParseErrorAtKey { key, expected_type, .. } => ApiError::field(&key, format!("expected {expected_type}")),
                other => ApiError::field("", format!("malformed path: {}", excerpt(&other.to_string(), 200))),
            }),
            // Only a route without parameters lacks them: a bug of ours, not the client's.
            Err(other) => Err(ApiError::Internal(other.body_text())),
        }
    }
}

/// The query string (`?limit=20&after=…`).
#[derive(Debug)]
pub(super) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            ApiError::field(&field_of(&path, &message), excerpt(&message, 200))
        })
    }
}

/// A JSON body.
#[derive(Debug)]
pub(super) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.body_read_timeout;
        let read = tokio::time::timeout(limit, axum::body::Bytes::from_request(request, state));
        let bytes = read.await.map_err(|_| ApiError::RequestTimeout(limit))?.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(state.config.max_body_bytes)
            } else {
                ApiError::field("", rejection.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Self).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                // The path of a syntax error points into what could not be read.
                return ApiError::field("", format!("malformed JSON: {inner}"));
            }
            let message = inner.to_string();
            ApiError::field(&field_of(&path, &message), excerpt(&message, 200))
        })
    }
}

/// The field a deserialization error is about: its path, completed with the field's name
/// when serde names it only in the message (a missing or an unknown field).
pub(super) fn field_of(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match named {
        Some(name) if path.is_empty() => name.to_owned(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(field_of(".", "missing field `q`"), "q");
        assert_eq!(field_of("operations[0]", "missing field `name`"), "operations[0].name");
        assert_eq!(field_of(".", "unknown field `colour`, expected one of `a`, `b`"), "colour");
        assert_eq!(field_of("limit", "invalid digit found in string"), "limit");
    }
}
