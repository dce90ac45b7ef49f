//! Reading: organizations, people, an organization's context, timelines, search, counts.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::{ApiError, AppState, ErrorBody, Page, Path, Query, blocking, limit, parse_id, parse_id_of, parse_time};
use rapport_graph::model::{Change, NodeId, RecordKind, Timestamp};
use rapport_graph::{
    ContextQuery, Graph, GraphError, GraphStats, ObservationItem, OrganizationContext, OrganizationView, PersonView, TimelineCursor,
    TimelinePage,
};
use rapport_ops::{NodeIdText, TAG_RULE, Tag, TimelineCursorText, is_valid_tag};

/// Counts of live records of each kind.
#[utoipa::path(get, path = "/v1/stats", tag = "graph", security(("bearer" = [])), responses(
    (status = 200, body = GraphStats),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn stats(State(state): State<AppState>) -> Result<Json<GraphStats>, ApiError> {
    Ok(Json(blocking(&state, Graph::stats).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangesQuery {
    /// Only changes after this sequence number (the `next` of the previous page; default 0,
    /// from the first).
    #[param(minimum = 0, maximum = 9_007_199_254_740_991.0)]
    after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The largest sequence number a client may pass (2^53 - 1).
const MAX_SEQUENCE: u64 = (1 << 53) - 1;

/// The change feed, oldest first: every record change, merge and unmerge, numbered in the
/// order the graph committed them. Read-only; the stages that follow it keep their own place.
#[utoipa::path(get, path = "/v1/changes", tag = "graph", params(ChangesQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<Change>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn changes(State(state): State<AppState>, Query(query): Query<ChangesQuery>) -> Result<Json<Page<Change>>, ApiError> {
    let limit = limit(query.limit, 100, "limit")?;
    let after = query.after.unwrap_or(0);
    // The document's bound: the largest whole number every JSON client reads exactly.
    if after > MAX_SEQUENCE {
        return Err(ApiError::field("after", format!("expected 0 to {MAX_SEQUENCE}")));
    }
    let items = blocking(&state, move |graph| graph.changes_since(after, limit)).await?;
    // A full page may have more behind it; the client asks again from its last entry.
    let next = (items.len() == limit).then(|| items.last().map(|c| c.seq.to_string())).flatten();
    Ok(Json(Page { items, next }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Continue after this id (the `next` of the previous page).
    #[param(value_type = Option<NodeIdText>)]
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Organizations, in id order.
#[utoipa::path(get, path = "/v1/organizations", tag = "graph", params(ListQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<OrganizationView>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 422, description = "`after` is the id of another kind of record", body = ErrorBody),
))]
pub(super) async fn list_organizations(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page<OrganizationView>>, ApiError> {
    list(state, query, RecordKind::Organization, Graph::organization).await
}

/// People, in id order.
#[utoipa::path(get, path = "/v1/people", tag = "graph", params(ListQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<PersonView>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 422, description = "`after` is the id of another kind of record", body = ErrorBody),
))]
pub(super) async fn list_people(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<Page<PersonView>>, ApiError> {
    list(state, query, RecordKind::Person, Graph::person).await
}

async fn list<T: Send + 'static>(
    state: AppState,
    query: ListQuery,
    kind: RecordKind,
    view: fn(&Graph, NodeId) -> Result<T, GraphError>,
) -> Result<Json<Page<T>>, ApiError> {
    let after = query.after.as_deref().map(|a| parse_id(a, "after")).transpose()?;
    if let Some(after) = after.filter(|after| after.kind != kind) {
        return Err(ApiError::unprocessable("after", format!("{after} is not the id of a {}", kind.id_prefix())));
    }
    let limit = limit(query.limit, 100, "limit")?;
    let (items, next) = blocking(&state, move |graph| {
        let ids = graph.list(kind, after, limit)?;
        let next = (ids.len() == limit).then(|| ids.last().map(ToString::to_string)).flatten();
        let items = ids.into_iter().map(|id| view(graph, id)).collect::<Result<Vec<T>, _>>()?;
        Ok::<_, GraphError>((items, next))
    })
    .await?;
    Ok(Json(Page { items, next }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ObservationQuery {
    /// Only observations with this tag.
    #[param(value_type = Option<Tag>)]
    tag: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

async fn observations(state: AppState, id: NodeId, query: ObservationQuery) -> Result<Json<Page<ObservationItem>>, ApiError> {
    let limit = limit(query.limit, 100, "limit")?;
    if let Some(tag) = query.tag.as_deref().filter(|tag| !is_valid_tag(tag)) {
        return Err(ApiError::field("tag", format!("`{tag}`: {TAG_RULE}")));
    }
    let items = blocking(&state, move |graph| graph.observations(id, query.tag.as_deref(), limit)).await?;
    Ok(Json(Page { items, next: None }))
}

/// Observations about an organization, newest first.
#[utoipa::path(get, path = "/v1/organizations/{id}/observations", tag = "graph", params(("id" = NodeIdText, Path, description = "org_…"), ObservationQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<ObservationItem>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn organization_observations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ObservationQuery>,
) -> Result<Json<Page<ObservationItem>>, ApiError> {
    observations(state, parse_id_of(&id, RecordKind::Organization)?, query).await
}

/// Observations about a person, newest first.
#[utoipa::path(get, path = "/v1/people/{id}/observations", tag = "graph", params(("id" = NodeIdText, Path, description = "per_…"), ObservationQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<ObservationItem>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn person_observations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ObservationQuery>,
) -> Result<Json<Page<ObservationItem>>, ApiError> {
    observations(state, parse_id_of(&id, RecordKind::Person)?, query).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    /// Words of a name (prefixes match), an email address, or a domain.
    q: String,
    /// At most this many, 1 to 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Finds organizations by name, email address or domain.
#[utoipa::path(get, path = "/v1/organizations/search", tag = "graph", params(SearchQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<OrganizationView>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn search_organizations(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Page<OrganizationView>>, ApiError> {
    let limit = limit(query.limit, 20, "limit")?;
    let items = blocking(&state, move |graph| {
        graph.search(RecordKind::Organization, &query.q, limit)?.into_iter().map(|id| graph.organization(id)).collect()
    })
    .await?;
    Ok(Json(Page { items, next: None }))
}

/// Finds people by name, email address or domain.
#[utoipa::path(get, path = "/v1/people/search", tag = "graph", params(SearchQuery), security(("bearer" = [])), responses(
    (status = 200, body = Page<PersonView>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn search_people(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Page<PersonView>>, ApiError> {
    let limit = limit(query.limit, 20, "limit")?;
    let items =
        blocking(&state, move |graph| graph.search(RecordKind::Person, &query.q, limit)?.into_iter().map(|id| graph.person(id)).collect())
            .await?;
    Ok(Json(Page { items, next: None }))
}

/// One organization, all its merged records folded.
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "graph", params(("id" = NodeIdText, Path, description = "org_…")), security(("bearer" = [])), responses(
    (status = 200, body = OrganizationView),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn organization(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<OrganizationView>, ApiError> {
    let id = parse_id_of(&id, RecordKind::Organization)?;
    Ok(Json(blocking(&state, move |graph| graph.organization(id)).await?))
}

/// One person, all its merged records folded.
#[utoipa::path(get, path = "/v1/people/{id}", tag = "graph", params(("id" = NodeIdText, Path, description = "per_…")), security(("bearer" = [])), responses(
    (status = 200, body = PersonView),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn person(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PersonView>, ApiError> {
    let id = parse_id_of(&id, RecordKind::Person)?;
    Ok(Json(blocking(&state, move |graph| graph.person(id)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ContextParams {
    /// The time to compute the context for (RFC 3339; default now).
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<String>,
    /// How many recent interactions and observations, 1 to 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    recent: Option<usize>,
}

/// Everything worth knowing before talking to an organization: its people, open deals,
/// recent interactions, observations, engagement, and who holds the relationship.
#[utoipa::path(get, path = "/v1/organizations/{id}/context", tag = "graph", params(("id" = NodeIdText, Path, description = "org_…"), ContextParams), security(("bearer" = [])), responses(
    (status = 200, body = OrganizationContext),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn organization_context(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<ContextParams>,
) -> Result<Json<OrganizationContext>, ApiError> {
    let id = parse_id_of(&id, RecordKind::Organization)?;
    let at = parse_time(params.at.as_deref(), "at")?.unwrap_or_else(Timestamp::now);
    let query = ContextQuery { at, recent: limit(params.recent, 20, "recent")? };
    Ok(Json(blocking(&state, move |graph| graph.organization_context(id, query)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct TimelineParams {
    /// Only interactions at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Only interactions before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// The `next` of the previous page.
    #[param(value_type = Option<TimelineCursorText>)]
    before: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

async fn timeline(state: AppState, id: NodeId, params: TimelineParams) -> Result<Json<TimelinePage>, ApiError> {
    let from = parse_time(params.from.as_deref(), "from")?;
    let to = parse_time(params.to.as_deref(), "to")?.unwrap_or(Timestamp(i64::MAX / 2));
    let limit = limit(params.limit, 50, "limit")?;
    let before = params
        .before
        .as_deref()
        .map(|b| b.parse::<TimelineCursor>().map_err(|()| ApiError::field("before", "expected the `next` value of a previous page")))
        .transpose()?;
    Ok(Json(blocking(&state, move |graph| graph.timeline(id, from, to, before, limit)).await?))
}

/// An organization's interactions, newest first, in pages.
#[utoipa::path(get, path = "/v1/organizations/{id}/timeline", tag = "graph", params(("id" = NodeIdText, Path, description = "org_…"), TimelineParams), security(("bearer" = [])), responses(
    (status = 200, body = TimelinePage),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn organization_timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
) -> Result<Json<TimelinePage>, ApiError> {
    timeline(state, parse_id_of(&id, RecordKind::Organization)?, params).await
}

/// A person's interactions, newest first, in pages.
#[utoipa::path(get, path = "/v1/people/{id}/timeline", tag = "graph", params(("id" = NodeIdText, Path, description = "per_…"), TimelineParams), security(("bearer" = [])), responses(
    (status = 200, body = TimelinePage),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn person_timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
) -> Result<Json<TimelinePage>, ApiError> {
    timeline(state, parse_id_of(&id, RecordKind::Person)?, params).await
}
