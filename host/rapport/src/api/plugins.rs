//! Plugins: what is installed, starting runs, and the run history.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, ErrorBody, JsonBody, Path, Query, limit, off_workers};
use rapport_core::id::RunId;
use rapport_plugin_host::registry::{InstalledPlugin, Instance, InstanceSchedule, LogLine, RunRecord, Trigger};
use rapport_plugin_host::{InstallOptions, Overview, PluginHostError, Uninstalled, Upgraded};
use rapport_schedule::ScheduleError;

impl From<PluginHostError> for ApiError {
    fn from(err: PluginHostError) -> Self {
        match err {
            PluginHostError::UnknownInstance(_) | PluginHostError::UnknownPlugin(_) => Self::NotFound(err.to_string()),
            PluginHostError::AlreadyRunning(_)
            | PluginHostError::AlreadyInstalled { .. }
            | PluginHostError::InstanceTaken { .. }
            | PluginHostError::InstanceConfigured(_) => Self::Conflict(err.to_string()),
            // What is wrong with an uploaded package is the client's to fix.
            PluginHostError::Manifest(_)
            | PluginHostError::Package(_)
            | PluginHostError::UnsupportedApi { .. }
            | PluginHostError::ForbiddenImports(_)
            | PluginHostError::NotAComponent(_)
            | PluginHostError::DoesNotFit(_)
            | PluginHostError::Link(_)
            | PluginHostError::NoConnector(_)
            | PluginHostError::ManifestMismatch { .. }
            | PluginHostError::Describe(_)
            | PluginHostError::InvalidName(_) => Self::unprocessable("", err.to_string()),
            PluginHostError::InvalidConfig => Self::unprocessable("", err.to_string()),
            PluginHostError::Schedule(err) => {
                Self::unprocessable(if matches!(err, ScheduleError::TimeZone(_)) { "timezone" } else { "cron" }, err.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Installed plugins (each checked to load) and their instances, with cursors, grants
/// and plans.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", security(("bearer" = [])), responses(
    (status = 200, body = Overview),
    (status = 401, body = ErrorBody),
))]
pub(super) async fn list_plugins(State(state): State<AppState>) -> Result<Json<Overview>, ApiError> {
    Ok(Json(state.plugins.overview().await?))
}

/// Starts a sync of the instance in the background; poll the returned run for progress.
#[utoipa::path(post, path = "/v1/plugins/{instance}/runs", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), security(("bearer" = [])), responses(
    (status = 202, body = RunRecord),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a run of this instance is in progress", body = ErrorBody),
))]
pub(super) async fn start_run(
    State(state): State<AppState>,
    Path(instance): Path<String>,
) -> Result<(StatusCode, Json<RunRecord>), ApiError> {
    // Claiming the run writes its record durably (a flush): not on an async worker.
    let plugins = std::sync::Arc::clone(&state.plugins);
    let record = off_workers(move || plugins.start(&instance, Trigger::Api)).await?;
    Ok((StatusCode::ACCEPTED, Json(record)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct RunListQuery {
    /// How many runs, 1 to 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The instance's runs, newest first.
#[utoipa::path(get, path = "/v1/plugins/{instance}/runs", tag = "plugins", params(("instance" = String, Path, description = "Instance name"), RunListQuery), security(("bearer" = [])), responses(
    (status = 200, body = Vec<RunRecord>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn list_runs(
    State(state): State<AppState>,
    Path(instance): Path<String>,
    Query(query): Query<RunListQuery>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let limit = limit(query.limit, 20, "limit")?;
    Ok(Json(state.plugins.runs(&instance, limit)?))
}

/// One run: status, counts, cursor and failure.
#[utoipa::path(get, path = "/v1/plugins/{instance}/runs/{run_id}", tag = "plugins", params(
    ("instance" = String, Path, description = "Instance name"),
    ("run_id" = String, Path, description = "Run id (run_…)"),
), security(("bearer" = [])), responses(
    (status = 200, body = RunRecord),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn run(
    State(state): State<AppState>,
    Path((instance, run_id)): Path<(String, String)>,
) -> Result<Json<RunRecord>, ApiError> {
    let (_, record) = find_run(&state, &instance, &run_id)?;
    record.map(Json).ok_or_else(|| no_run(&instance, &run_id))
}

/// The run `run_id` names, if it spells a run id; any other text names no run.
fn find_run(state: &AppState, instance: &str, run_id: &str) -> Result<(RunId, Option<RunRecord>), ApiError> {
    let id: RunId = run_id.parse().map_err(|_| no_run(instance, run_id))?;
    Ok((id, state.plugins.run_record(instance, id)?))
}

fn no_run(instance: &str, run_id: &str) -> ApiError {
    ApiError::NotFound(format!("instance `{instance}` has no run {}", rapport_ops::excerpt(run_id, 64)))
}

/// Sets the instance's schedule; it syncs by itself from its next time on.
#[utoipa::path(put, path = "/v1/plugins/{instance}/schedule", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), request_body = InstanceSchedule, security(("bearer" = [])), responses(
    (status = 200, body = Instance),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "the expression or the time zone cannot be read", body = ErrorBody),
))]
pub(super) async fn set_schedule(
    State(state): State<AppState>,
    Path(instance): Path<String>,
    JsonBody(schedule): JsonBody<InstanceSchedule>,
) -> Result<Json<Instance>, ApiError> {
    let plugins = std::sync::Arc::clone(&state.plugins);
    off_workers(move || plugins.configure_schedule(&instance, Some(schedule))).await.map(Json)
}

/// Removes the instance's schedule.
#[utoipa::path(delete, path = "/v1/plugins/{instance}/schedule", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), security(("bearer" = [])), responses(
    (status = 200, body = Instance),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn remove_schedule(State(state): State<AppState>, Path(instance): Path<String>) -> Result<Json<Instance>, ApiError> {
    let plugins = std::sync::Arc::clone(&state.plugins);
    off_workers(move || plugins.configure_schedule(&instance, None)).await.map(Json)
}

/// Whether the instance's schedule runs it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Enabled {
    /// `false` keeps the schedule but stops it running the instance.
    enabled: bool,
}

/// Enables or disables the instance's schedule (it still runs when asked).
#[utoipa::path(put, path = "/v1/plugins/{instance}/enabled", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), request_body = Enabled, security(("bearer" = [])), responses(
    (status = 200, body = Instance),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn set_enabled(
    State(state): State<AppState>,
    Path(instance): Path<String>,
    JsonBody(Enabled { enabled }): JsonBody<Enabled>,
) -> Result<Json<Instance>, ApiError> {
    let plugins = std::sync::Arc::clone(&state.plugins);
    off_workers(move || plugins.set_enabled(&instance, enabled)).await.map(Json)
}

/// Replaces the instance's configuration (a JSON object); its next run uses it. Secrets
/// belong in `rapport.toml`, not here: the configuration is shown by `GET /v1/plugins`.
#[utoipa::path(put, path = "/v1/plugins/{instance}/config", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), request_body(content = Object, description = "The instance configuration"), security(("bearer" = [])), responses(
    (status = 200, body = Instance),
    (status = 400, description = "the body is not a JSON object", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "the plugin refuses the configuration", body = ErrorBody),
))]
pub(super) async fn set_config(
    State(state): State<AppState>,
    Path(instance): Path<String>,
    JsonBody(config): JsonBody<serde_json::Value>,
) -> Result<Json<Instance>, ApiError> {
    if !config.is_object() {
        return Err(ApiError::field("", "expected a JSON object"));
    }
    let plugins = std::sync::Arc::clone(&state.plugins);
    off_workers(move || plugins.configure(&instance, config)).await.map(Json)
}

/// Forgets the instance's cursor: its next run syncs everything again.
#[utoipa::path(delete, path = "/v1/plugins/{instance}/cursor", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), security(("bearer" = [])), responses(
    (status = 204, description = "the cursor is cleared"),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a run of this instance is in progress", body = ErrorBody),
))]
pub(super) async fn reset_cursor(State(state): State<AppState>, Path(instance): Path<String>) -> Result<StatusCode, ApiError> {
    let plugins = std::sync::Arc::clone(&state.plugins);
    off_workers(move || plugins.set_cursor(&instance, None)).await.map(|()| StatusCode::NO_CONTENT)
}

/// Removes the instance with its cursor, schedule, run history and logs; the records it
/// synced stay. The last instance of a plugin takes the plugin with it.
#[utoipa::path(delete, path = "/v1/plugins/{instance}", tag = "plugins", params(("instance" = String, Path, description = "Instance name")), security(("bearer" = [])), responses(
    (status = 200, body = Uninstalled),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a run of this instance is in progress", body = ErrorBody),
))]
pub(super) async fn uninstall(State(state): State<AppState>, Path(instance): Path<String>) -> Result<Json<Uninstalled>, ApiError> {
    let plugins = std::sync::Arc::clone(&state.plugins);
    off_workers(move || plugins.uninstall_instance(&instance)).await.map(Json)
}

/// The lines a run logged, in order (at most 1,000 per run; the run record counts the rest).
#[utoipa::path(get, path = "/v1/plugins/{instance}/runs/{run_id}/logs", tag = "plugins", params(
    ("instance" = String, Path, description = "Instance name"),
    ("run_id" = String, Path, description = "Run id (run_…)"),
), security(("bearer" = [])), responses(
    (status = 200, body = Vec<LogLine>),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub(super) async fn run_logs(
    State(state): State<AppState>,
    Path((instance, run_id)): Path<(String, String)>,
) -> Result<Json<Vec<LogLine>>, ApiError> {
    let (id, record) = find_run(&state, &instance, &run_id)?;
    if record.is_none() {
        return Err(no_run(&instance, &run_id));
    }
    Ok(Json(state.plugins.logs(&instance, id)?))
}

/// A plugin package, uploaded: what `rapport plugin install` reads from a package directory.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PackageUpload {
    /// The package's `plugin.toml`, as text.
    #[schema(max_length = 65536)]
    manifest: String,
    /// Its `plugin.wasm`, base64-encoded (standard alphabet, padded).
    component_base64: String,
    /// For an install: the instance to create (default: the plugin's name).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    instance: Option<String>,
    /// For an install: the instance's configuration (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Option<serde_json::Value>,
}

/// The package's files written where the plugin host reads packages from.
fn unpack(upload: &PackageUpload) -> Result<tempfile::TempDir, ApiError> {
    use base64::Engine as _;
    let component = base64::engine::general_purpose::STANDARD
        .decode(&upload.component_base64)
        .map_err(|err| ApiError::unprocessable("component_base64", format!("not base64: {err}")))?;
    let dir = tempfile::tempdir().map_err(|err| ApiError::Internal(format!("cannot unpack the package: {err}")))?;
    for (name, bytes) in [("plugin.toml", upload.manifest.as_bytes()), ("plugin.wasm", component.as_slice())] {
        std::fs::write(dir.path().join(name), bytes).map_err(|err| ApiError::Internal(format!("cannot unpack the package: {err}")))?;
    }
    Ok(dir)
}

/// What an install made.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Installed {
    /// The plugin as installed.
    pub plugin: InstalledPlugin,
    /// The instance created (or the one already there, for the same package again).
    pub instance: Instance,
}

/// Installs a plugin package and creates an instance of it; the same package again is
/// idempotent for an existing instance. Refused when another build of the plugin is
/// installed (upgrade it with `PUT /v1/packages`).
#[utoipa::path(post, path = "/v1/packages", tag = "plugins", request_body = PackageUpload, security(("bearer" = [])), responses(
    (status = 201, body = Installed),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 409, description = "another build is installed, or the instance exists otherwise", body = ErrorBody),
    (status = 422, description = "the package is not one this host can run (manifest, imports, exports)", body = ErrorBody),
))]
pub(super) async fn install_package(
    State(state): State<AppState>,
    JsonBody(upload): JsonBody<PackageUpload>,
) -> Result<(StatusCode, Json<Installed>), ApiError> {
    let dir = unpack(&upload)?;
    let options = InstallOptions { instance: upload.instance, config: upload.config };
    let (plugin, instance) = state.plugins.install(dir.path(), options).await?;
    Ok((StatusCode::CREATED, Json(Installed { plugin, instance })))
}

/// Replaces an installed plugin (named by the manifest) with a new build: its instances
/// keep their configuration and schedules, and their cursors if `cursor_format` is unchanged.
#[utoipa::path(put, path = "/v1/packages", tag = "plugins", request_body = PackageUpload, security(("bearer" = [])), responses(
    (status = 200, body = Upgraded),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no plugin of that name is installed", body = ErrorBody),
    (status = 409, description = "a run of one of its instances is in progress", body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub(super) async fn upgrade_package(
    State(state): State<AppState>,
    JsonBody(upload): JsonBody<PackageUpload>,
) -> Result<Json<Upgraded>, ApiError> {
    let dir = unpack(&upload)?;
    Ok(Json(state.plugins.upgrade(dir.path()).await?))
}

/// Another instance of an installed plugin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewInstance {
    /// The installed plugin.
    plugin: String,
    /// The new instance's name; the source of every record it writes.
    instance: String,
    /// Its configuration (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Option<serde_json::Value>,
}

/// Adds an instance of an installed plugin (a second account of the same system).
#[utoipa::path(post, path = "/v1/instances", tag = "plugins", request_body = NewInstance, security(("bearer" = [])), responses(
    (status = 201, body = Instance),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the name is taken", body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub(super) async fn add_instance(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewInstance>,
) -> Result<(StatusCode, Json<Instance>), ApiError> {
    let plugins = std::sync::Arc::clone(&state.plugins);
    let config = new.config.unwrap_or_else(|| serde_json::json!({}));
    let instance = off_workers(move || plugins.add_instance(&new.plugin, &new.instance, config)).await?;
    Ok((StatusCode::CREATED, Json(instance)))
}
