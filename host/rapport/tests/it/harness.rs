//! Shared test setup: temporary graphs and an API server on a loopback port.

use std::net::SocketAddr;
use std::sync::Arc;

use rapport::api::{self, AppState};
use rapport::config::{ApiConfig, token_digest};
use rapport::ledger::GraphLedger;
use rapport_graph::{Graph, IdentityRules};
use rapport_plugin_host::PluginHost;
use rapport_plugin_host::config::PluginsConfig;
use rapport_schedule::{Clock, SystemClock};
use rapport_signals::{Signals, SignalsConfig};
use rapport_store::SledStore;

/// The bearer token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// A graph in a temporary directory, removed on drop.
pub struct TempGraph {
    pub graph: Arc<Graph>,
    pub dir: tempfile::TempDir,
}

/// The demo's identity rules: its employees' domain, and its sources ranked as `rapport
/// demo` ranks them (the CRM's names first).
pub fn rules() -> IdentityRules {
    IdentityRules::with_defaults(["northwind.example".to_owned()]).with_source_priority(["crm", "support", "mail"].map(str::to_owned))
}

pub fn temp_graph() -> TempGraph {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 32 << 20).unwrap();
    TempGraph { graph: Arc::new(Graph::new(Arc::new(store), rules())), dir }
}

/// An API server on 127.0.0.1:0 over a temporary graph, with the plugin runtime; its
/// async runtime is the test's to drive plugin runs on. Stops on drop.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::blocking::Client,
    pub graph: Arc<Graph>,
    pub plugins: Arc<PluginHost>,
    pub plugins_config: PluginsConfig,
    pub runtime: tokio::runtime::Runtime,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestServer {
    pub fn start() -> Self {
        let TempGraph { graph, dir } = temp_graph();
        Self::over(graph, Some(dir), 1 << 20)
    }

    pub fn with_body_limit(max_body_bytes: usize) -> Self {
        let TempGraph { graph, dir } = temp_graph();
        Self::over(graph, Some(dir), max_body_bytes)
    }

    /// A server whose API settings `configure` changes.
    pub fn with_api(configure: impl FnOnce(&mut ApiConfig)) -> Self {
        let TempGraph { graph, dir } = temp_graph();
        Self::build(graph, Some(dir), configure, |_| {}, Arc::new(SystemClock))
    }

    /// A server whose plugin runtime has the limits `configure` sets.
    pub fn with_plugin_limits(configure: impl FnOnce(&mut PluginsConfig)) -> Self {
        let TempGraph { graph, dir } = temp_graph();
        Self::build(graph, Some(dir), |_| {}, configure, Arc::new(SystemClock))
    }

    /// A server whose schedules run against `clock`, over `graph` (a fresh one if none).
    pub fn with_clock(graph: Option<TempGraph>, clock: Arc<dyn Clock>) -> Self {
        let TempGraph { graph, dir } = graph.unwrap_or_else(temp_graph);
        Self::build(graph, Some(dir), |_| {}, |_| {}, clock)
    }

    pub fn over(graph: Arc<Graph>, dir: Option<tempfile::TempDir>, max_body_bytes: usize) -> Self {
        Self::build(graph, dir, |api| api.max_body_bytes = max_body_bytes, |_| {}, Arc::new(SystemClock))
    }

    fn build(
        graph: Arc<Graph>,
        dir: Option<tempfile::TempDir>,
        configure_api: impl FnOnce(&mut ApiConfig),
        configure: impl FnOnce(&mut PluginsConfig),
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut config = ApiConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_digests: vec![token_digest(TOKEN)],
            max_body_bytes: 1 << 20,
            ..ApiConfig::default()
        };
        configure_api(&mut config);
        let plugins_dir = tempfile::tempdir().unwrap();
        let mut plugins_config = PluginsConfig::with_dir(plugins_dir.path().to_owned());
        configure(&mut plugins_config);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let plugins = {
            let _inside = runtime.enter();
            Arc::new(PluginHost::with_clock(GraphLedger::over(Arc::clone(&graph)), plugins_config.clone(), clock).unwrap())
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signals = Arc::new(Signals::open(Arc::clone(&graph), SignalsConfig::default()).unwrap());
        let state = AppState::new(Arc::clone(&graph), Arc::clone(&plugins), signals, config);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(api::serve(listener, state, async {
            let _ = rx.await;
        }));
        Self {
            base: format!("http://{addr}"),
            client: reqwest::blocking::Client::new(),
            graph,
            plugins,
            plugins_config,
            runtime,
            shutdown: Some(tx),
            _dirs: dir.into_iter().chain([plugins_dir]).collect(),
        }
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(TOKEN).send().unwrap()
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().unwrap()
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::blocking::Response {
        self.client.post(format!("{}{path}", self.base)).bearer_auth(TOKEN).json(body).send().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
