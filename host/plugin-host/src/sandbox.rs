//! The wasmtime engine configured for a daemon: epoch interruption driven by a ticker
//! thread, a pooling allocator sized to the concurrent runs, WASI p2 linked with an empty
//! deny-by-default context, compiled components cached on disk, and the import check that
//! refuses plugins asking for more than the contract.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginHostError;
use super::bindings::{self, ConnectorPre};
use super::manifest::{ApiVersion, SUPPORTED_API};
use super::run::RunState;
use crate::config::PluginsConfig;
use rapport_core::hex;

/// How often the epoch advances: the granularity of CPU accounting and of yielding to
/// other tasks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, the linker and the ticker, shared by every run.
pub(super) struct Sandbox {
    pub engine: Engine,
    pub linker: Linker<RunState>,
    cache_dir: PathBuf,
    ticker: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// Epochs the ticker has advanced: the runs' CPU clocks read it to tell a guest that ran
    /// from one that waited.
    pub ticks: Arc<AtomicU64>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("cache_dir", &self.cache_dir).finish_non_exhaustive()
    }
}

impl Sandbox {
    pub fn new(config: &PluginsConfig) -> Result<Self, PluginHostError> {
        let engine = Engine::new(&engine_config(config)).map_err(|e| PluginHostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        let link = |e: wasmtime::Error| PluginHostError::Engine(format!("linking host functions: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        bindings::Connector::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(link)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let (engine, stop, ticks) = (engine.clone(), Arc::clone(&stop), Arc::clone(&ticks));
            std::thread::Builder::new()
                .name("rapport-epoch".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        ticks.fetch_add(1, Ordering::Relaxed);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginHostError::Engine(format!("starting the epoch ticker: {e}")))?
        };
        Ok(Self { engine, linker, cache_dir: config.dir.join("compiled"), ticker: Some(ticker), stop, ticks })
    }

    /// Compiles a component (or loads its cached compilation) and pre-links it.
    pub fn prepare(&self, wasm: &[u8]) -> Result<ConnectorPre<RunState>, PluginHostError> {
        let component = self.load(wasm)?;
        check_imports(&self.engine, &component)?;
        let exports: Vec<String> = component.component_type().exports(&self.engine).map(|(name, _)| name.to_owned()).collect();
        if !["describe", "sync"].iter().all(|name| exports.iter().any(|e| e == name)) {
            return Err(PluginHostError::NoConnector(exports));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| PluginHostError::Link(format!("{e:#}")))?;
        ConnectorPre::new(pre).map_err(|e| PluginHostError::Link(format!("{e:#}")))
    }

    /// The compiled component: from the disk cache, keyed by the component's digest and the
    /// engine's compatibility hash, or compiled now and cached.
    fn load(&self, wasm: &[u8]) -> Result<Component, PluginHostError> {
        let mut engine_hash = DigestHasher(Sha256::new());
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut engine_hash);
        let key = format!("{}-{}", hex(&Sha256::digest(wasm)[..16]), hex(&engine_hash.0.finalize()[..8]));
        let path = self.cache_dir.join(format!("{key}.cwasm"));
        if let Some(component) = std::fs::read(&path).ok().and_then(|bytes| self.deserialize(&bytes).ok()) {
            return Ok(component);
        }
        let compiled = self.engine.precompile_component(wasm).map_err(|e| PluginHostError::NotAComponent(format!("{e:#}")))?;
        let mut file = Sha256::digest(&compiled).to_vec();
        file.extend_from_slice(&compiled);
        // The cache is an optimisation: failing to write it costs a compile next time.
        if let Err(err) = write_atomically(&path, &file) {
            tracing::warn!(path = %path.display(), error = %err, "cannot cache the compiled plugin");
        }
        // Loading checks the component against the pool's per-component caps too.
        self.deserialize(&file).map_err(|err| PluginHostError::DoesNotFit(format!("{err:#}")))
    }

    /// Loads a cache file: a SHA-256 of the artifact, then the artifact.
    #[allow(unsafe_code)]
    fn deserialize(&self, file: &[u8]) -> wasmtime::Result<Component> {
        let artifact = match file.split_at_checked(32) {
            Some((digest, artifact)) if Sha256::digest(artifact).as_slice() == digest => artifact,
            _ => wasmtime::bail!("the compiled code's digest does not match"),
        };
        // SAFETY: `Component::deserialize` requires bytes produced by `precompile_component`
        // of a compatible engine. The artifact was written by this host into its own cache
        // directory (atomically, so never torn), its digest matches, and its file name
        // carries this engine's compatibility hash; wasmtime still checks the header.
        unsafe { Component::deserialize(&self.engine, artifact) }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

fn engine_config(config: &PluginsConfig) -> Config {
    let runs = config.max_concurrent_runs;
    let mut pool = PoolingAllocationConfig::new();
    // One slot per concurrent run, plus one for installs (which call `describe`). A
    // component built by Rust holds a few core instances (its module and adapter shims).
    let slots = runs + 1;
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        // What one component may take of the pool is what a slot holds, so a component
        // declaring more memories, tables or instances cannot take another run's place.
        .max_memories_per_component(2)
        .max_tables_per_component(4)
        .max_core_instances_per_component(8)
        // The limiter refuses growth past the configured limit first, so the run records
        // "out of memory"; the pool's own cap sits just above it.
        .max_memory_size(usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX).saturating_add(1 << 16));
    let mut engine = Config::new();
    engine.wasm_component_model(true).epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    engine
}

/// Feeds `Hash` output into SHA-256, for a digest that is stable across processes.
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

/// WASI interfaces a plugin may import: Rust's standard library imports these even when
/// the plugin does nothing with them, and the host links them to an empty context.
const ALLOWED_WASI: &[&str] = &["wasi:io/", "wasi:cli/", "wasi:clocks/", "wasi:random/"];

/// Checks a component's imports against what the host grants: the contract's interfaces
/// at a supported version, and the harmless WASI basics. Everything else (filesystem,
/// sockets, unknown interfaces) refuses the plugin, listing every offending import.
pub(super) fn check_imports(engine: &Engine, component: &Component) -> Result<(), PluginHostError> {
    let mut refused = Vec::new();
    for (name, _) in component.component_type().imports(engine) {
        if let Some(rest) = name.strip_prefix("rapport:connector/") {
            let version = rest.split_once('@').and_then(|(_, v)| ApiVersion::parse(v));
            match version {
                Some(v) if SUPPORTED_API.supports(v) => {}
                Some(v) => return Err(PluginHostError::UnsupportedApi { plugin: v, host: SUPPORTED_API, import: name.to_owned() }),
                None => refused.push(name.to_owned()),
            }
        } else if !ALLOWED_WASI.iter().any(|prefix| name.starts_with(prefix)) {
            refused.push(name.to_owned());
        }
    }
    if refused.is_empty() { Ok(()) } else { Err(PluginHostError::ForbiddenImports(refused)) }
}
