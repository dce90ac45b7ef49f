//! Installed plugins and their instances: installing and upgrading packages, instances
//! and their configuration, cursors and grants, uninstalling; changes hold the instances
//! they touch, so they never race a run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::bindings::ConnectorPre;
use crate::manifest::{Manifest, SUPPORTED_API};
use crate::network::{Access, Network};
use crate::registry::{InstalledPlugin, Instance};
use crate::run::RunState;
use crate::secrets::Secrets;
use rapport_core::config::ConfigError;
use rapport_core::hex;

use crate::{
    GrantSummary, InstallOptions, InstanceStatus, Overview, PluginHost, PluginHostError, PluginStatus, Uninstalled, Upgraded, io, lock,
    manifest, package_files, registry,
};

/// Instances held still while they change (no run may start); released on drop.
struct Held {
    running: Arc<Mutex<HashSet<String>>>,
    names: Vec<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        for name in &self.names {
            running.remove(name);
        }
    }
}

impl PluginHost {
    /// Installs the plugin package at `path` (a directory holding `plugin.toml` and
    /// `plugin.wasm`, or the `.wasm` file with `plugin.toml` beside it) and creates its
    /// instance. Installing the very same package again only adds the instance, if new;
    /// a different build of an installed plugin goes through [`Self::upgrade`].
    pub async fn install(&self, path: &Path, options: InstallOptions) -> Result<(InstalledPlugin, Instance), PluginHostError> {
        let (manifest, wasm, pre) = self.load_package(path).await?;
        let instance_name = options.instance.unwrap_or_else(|| manifest.name.clone());
        let asked_config = options.config.clone();
        let fresh = self.new_instance(instance_name, &manifest.name, options.config.unwrap_or_else(|| serde_json::json!({})))?;
        let digest = hex(&Sha256::digest(&wasm));
        let previous = registry::plugin_key(&manifest.name).get(&*self.ledger)?;
        if let Some(previous) = previous.as_ref().filter(|p| p.component_sha256 != digest) {
            return Err(PluginHostError::AlreadyInstalled {
                name: manifest.name,
                installed: previous.manifest.version.clone(),
                offered: manifest.version,
            });
        }
        let existing = registry::instance_key(&fresh.name).get(&*self.ledger)?;
        if let Some(existing) = existing.as_ref().filter(|e| e.plugin != manifest.name) {
            return Err(PluginHostError::InstanceTaken { instance: fresh.name, plugin: existing.plugin.clone() });
        }
        // Installing again is idempotent, but never drops a configuration silently.
        if let Some(existing) = existing.as_ref().filter(|e| asked_config.as_ref().is_some_and(|asked| *asked != e.config)) {
            return Err(PluginHostError::InstanceConfigured(existing.name.clone()));
        }
        let plugin = match previous {
            Some(plugin) => plugin,
            None => {
                self.store_component(&manifest.name, &digest, &wasm)?;
                InstalledPlugin { manifest, component_sha256: digest.clone(), installed_at: self.clock.now() }
            }
        };
        let instance = existing.unwrap_or(fresh);
        self.ledger.write_meta(vec![
            registry::plugin_key(&plugin.manifest.name).put(&plugin),
            registry::instance_key(&instance.name).put(&instance),
        ])?;
        lock(&self.prepared).insert(digest, pre);
        tracing::info!(plugin = %plugin.manifest.name, version = %plugin.manifest.version, instance = %instance.name, "plugin installed");
        Ok((plugin, instance))
    }

    /// Replaces an installed plugin with the build at `path`. Its instances keep their
    /// configuration and schedules; they keep their cursors only if the new manifest's
    /// `cursor_format` equals the old one, and start over otherwise. Refused while one of
    /// them runs.
    pub async fn upgrade(&self, path: &Path) -> Result<Upgraded, PluginHostError> {
        let (manifest, wasm, pre) = self.load_package(path).await?;
        let previous: InstalledPlugin = registry::plugin_key(&manifest.name)
            .get(&*self.ledger)?
            .ok_or_else(|| PluginHostError::UnknownPlugin(manifest.name.clone()))?;
        let instances: Vec<Instance> = self.instances()?.into_iter().filter(|i| i.plugin == manifest.name).collect();
        let _held = self.hold(&instances)?;
        let digest = hex(&Sha256::digest(&wasm));
        self.store_component(&manifest.name, &digest, &wasm)?;
        let cursors_kept = previous.manifest.cursor_format == manifest.cursor_format;
        let plugin = InstalledPlugin { manifest, component_sha256: digest.clone(), installed_at: self.clock.now() };
        let mut writes = vec![registry::plugin_key(&plugin.manifest.name).put(&plugin)];
        let cursors_reset: Vec<String> = if cursors_kept { Vec::new() } else { instances.iter().map(|i| i.name.clone()).collect() };
        writes.extend(cursors_reset.iter().map(|name| registry::cursor_key(name).delete()));
        self.ledger.write_meta(writes)?;
        if previous.component_sha256 != digest {
            self.forget_component(&previous);
        }
        lock(&self.prepared).insert(digest, pre);
        tracing::info!(
            plugin = %plugin.manifest.name, from = %previous.manifest.version, to = %plugin.manifest.version,
            cursors_reset = cursors_reset.len(), "plugin upgraded"
        );
        Ok(Upgraded { previous_version: previous.manifest.version, plugin, cursors_reset })
    }

    /// Reads and checks a package: its manifest, the API it needs, its component compiled
    /// and describing itself as the manifest says.
    async fn load_package(&self, path: &Path) -> Result<(Manifest, Vec<u8>, ConnectorPre<RunState>), PluginHostError> {
        let (manifest_path, wasm_path) = package_files(path)?;
        let manifest = Manifest::load(&manifest_path)?;
        if !SUPPORTED_API.supports(manifest.api) {
            return Err(PluginHostError::UnsupportedApi { plugin: manifest.api, host: SUPPORTED_API, import: String::new() });
        }
        let wasm = std::fs::read(&wasm_path).map_err(io(&wasm_path))?;
        let pre = self.sandbox.prepare(&wasm)?;
        self.check_description(&pre, &manifest).await?;
        Ok((manifest, wasm, pre))
    }

    /// Writes a component into the plugin directory under its digest.
    fn store_component(&self, plugin: &str, digest: &str, wasm: &[u8]) -> Result<(), PluginHostError> {
        let stored = self.component_path(plugin, digest);
        if let Some(dir) = stored.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&stored, wasm).map_err(io(&stored))
    }

    /// Every plugin (each loaded and asked to describe itself, so one this host can no
    /// longer run shows now rather than at its next scheduled run) and every instance.
    pub async fn overview(&self) -> Result<Overview, PluginHostError> {
        let mut plugins = Vec::new();
        for plugin in self.plugins()? {
            let problem = self.verify(&plugin.manifest.name).await.err().map(|err| err.to_string());
            plugins.push(PluginStatus { plugin, problem });
        }
        let instances = self
            .instances()?
            .into_iter()
            .map(|instance| {
                let (grant, plan) = (self.grant(&instance.name), self.plan(&instance.name));
                Ok(InstanceStatus { cursor: self.cursor(&instance.name)?, grant, plan, instance })
            })
            .collect::<Result<_, PluginHostError>>()?;
        Ok(Overview { plugins, instances })
    }

    /// Checks that an installed plugin still loads in this host and agrees with its
    /// manifest: a fresh sandbox, instantiated, asked to `describe` itself.
    pub async fn verify(&self, name: &str) -> Result<(), PluginHostError> {
        let plugin: InstalledPlugin =
            registry::plugin_key(name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(name.to_owned()))?;
        let pre = self.prepared_for(&plugin)?;
        self.check_description(&pre, &plugin.manifest).await
    }

    /// Calls `describe` in a sandboxed store and compares it with the manifest.
    async fn check_description(&self, pre: &ConnectorPre<RunState>, manifest: &Manifest) -> Result<(), PluginHostError> {
        // `describe` gets no network access and no secrets.
        let network = Network::new(Arc::new(Access::default()), self.network.clone());
        let mut store = RunState::store(&self.sandbox.engine, Arc::clone(&self.sandbox.ticks), self.limits(), None, network);
        let describe = async {
            let connector = pre.instantiate_async(&mut store).await?;
            store.data_mut().resume_clock();
            connector.call_describe(&mut store).await
        };
        let description = tokio::time::timeout(self.config.host_call_timeout, describe)
            .await
            .map_err(|_| PluginHostError::Describe(format!("no answer within {} s", self.config.host_call_timeout.as_secs())))?
            .map_err(|e| PluginHostError::Describe(format!("{e:#}")))?;
        if description.name != manifest.name || description.version != manifest.version {
            return Err(PluginHostError::ManifestMismatch {
                manifest: format!("{} {}", manifest.name, manifest.version),
                described: format!("{} {}", description.name, description.version),
            });
        }
        Ok(())
    }

    pub(crate) fn component_path(&self, plugin: &str, digest: &str) -> PathBuf {
        self.config.dir.join(plugin).join(format!("{digest}.wasm"))
    }

    /// Installed plugins, by name.
    pub fn plugins(&self) -> Result<Vec<InstalledPlugin>, PluginHostError> {
        registry::PLUGINS.list(&*self.ledger)
    }

    /// Plugin instances, by name.
    pub fn instances(&self) -> Result<Vec<Instance>, PluginHostError> {
        registry::INSTANCES.list(&*self.ledger)
    }

    /// The last committed cursor of an instance, as shown to people: the instance's
    /// secrets cut out (the plugin itself resumes from the stored value).
    pub fn cursor(&self, instance: &str) -> Result<Option<String>, PluginHostError> {
        Ok(registry::cursor(&*self.ledger, instance)?.map(|c| self.shown_cursor(instance, &c)))
    }

    /// `cursor` as shown to people: the instance's secrets cut out, or all of it hidden
    /// while they cannot be read (a variable not set in this process).
    pub(crate) fn shown_cursor(&self, instance: &str, cursor: &str) -> String {
        match self.secrets_of(instance) {
            Ok(secrets) => secrets.redact(cursor).into_owned(),
            Err(err) => format!("(hidden until the instance's secrets can be read: {err})"),
        }
    }

    /// The secrets the operator grants `instance`, those held in variables read now.
    pub(crate) fn secrets_of(&self, instance: &str) -> Result<Secrets, ConfigError> {
        let sources = self.config.instances.get(instance).map(|grant| &grant.secrets);
        let secrets =
            sources.into_iter().flatten().map(|(name, source)| Ok((name.clone(), source.resolve()?))).collect::<Result<_, _>>()?;
        Ok(Secrets::new(secrets))
    }

    /// Sets (or, with `None`, clears) an instance's cursor: its next run starts there, or
    /// from the beginning. Refused while it runs.
    pub fn set_cursor(&self, name: &str, cursor: Option<&str>) -> Result<(), PluginHostError> {
        let instance = self.instance(name)?;
        let _held = self.hold(std::slice::from_ref(&instance))?;
        let row = registry::cursor_key(name);
        self.ledger.write_meta(vec![match cursor {
            Some(cursor) => row.put(&cursor.to_owned()),
            None => row.delete(),
        }])?;
        tracing::info!(instance = %name, reset = cursor.is_none(), "instance cursor set");
        Ok(())
    }

    /// What the operator's configuration grants `instance`.
    pub fn grant(&self, instance: &str) -> GrantSummary {
        self.config.instances.get(instance).map_or_else(GrantSummary::default, |grant| GrantSummary {
            allowed_hosts: grant.allowed_hosts.iter().map(ToString::to_string).collect(),
            rate_limit: grant.rate_limit,
            secrets: grant.secrets.keys().cloned().collect(),
        })
    }

    /// Replaces an instance's configuration (a JSON object); the next run uses it.
    pub fn configure(&self, name: &str, config: serde_json::Value) -> Result<Instance, PluginHostError> {
        if !config.is_object() {
            return Err(PluginHostError::InvalidConfig);
        }
        let instance = Instance { config, ..self.instance(name)? };
        self.ledger.write_meta(vec![registry::instance_key(name).put(&instance)])?;
        tracing::info!(instance = %name, "instance configuration changed");
        Ok(instance)
    }

    /// Creates another instance of an installed plugin (a second account of the same CRM).
    pub fn add_instance(&self, plugin: &str, name: &str, config: serde_json::Value) -> Result<Instance, PluginHostError> {
        let plugin: InstalledPlugin =
            registry::plugin_key(plugin).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(plugin.to_owned()))?;
        let instance = self.new_instance(name.to_owned(), &plugin.manifest.name, config)?;
        if let Some(existing) = registry::instance_key(name).get(&*self.ledger)? {
            return Err(PluginHostError::InstanceTaken { instance: name.to_owned(), plugin: existing.plugin });
        }
        self.ledger.write_meta(vec![registry::instance_key(name).put(&instance)])?;
        tracing::info!(instance = %name, plugin = %instance.plugin, "instance created");
        Ok(instance)
    }

    /// A new instance of `plugin`, unscheduled and enabled, once its name and configuration
    /// are checked.
    fn new_instance(&self, name: String, plugin: &str, config: serde_json::Value) -> Result<Instance, PluginHostError> {
        if !manifest::is_valid_name(&name) {
            return Err(PluginHostError::InvalidName(name));
        }
        if !config.is_object() {
            return Err(PluginHostError::InvalidConfig);
        }
        Ok(Instance { name, plugin: plugin.to_owned(), config, created_at: self.clock.now(), schedule: None, enabled: true })
    }

    /// Removes an instance: its configuration, cursor, schedule, run history and logs.
    /// The records it synced stay in the graph under its source name. The last instance
    /// of a plugin takes the plugin (manifest and component) with it. Refused while it runs.
    pub fn uninstall_instance(&self, name: &str) -> Result<Uninstalled, PluginHostError> {
        let instance = self.instance(name)?;
        let _held = self.hold(std::slice::from_ref(&instance))?;
        let mut deletes = vec![
            registry::instance_key(name).delete(),
            registry::cursor_key(name).delete(),
            registry::plan_key(name).delete(),
            registry::active_key(name).delete(),
        ];
        for prefix in registry::history_prefixes(name) {
            deletes.extend(self.ledger.meta_with_prefix(&prefix)?.into_iter().map(|(key, _)| (key, None)));
        }
        let others = self.instances()?.into_iter().filter(|i| i.plugin == instance.plugin && i.name != name).count();
        let plugin = if others == 0 { registry::plugin_key(&instance.plugin).get(&*self.ledger)? } else { None };
        if plugin.is_some() {
            deletes.push(registry::plugin_key(&instance.plugin).delete());
        }
        self.ledger.write_meta(deletes)?;
        self.scheduler.remove(&instance.name);
        lock(&self.buckets).remove(name);
        if let Some(plugin) = &plugin {
            self.forget_component(plugin);
        }
        tracing::info!(instance = %name, plugin_removed = plugin.is_some(), "instance uninstalled");
        Ok(Uninstalled { instances: vec![instance.name], plugin: plugin.map(|p| p.manifest.name) })
    }

    /// Removes a plugin and every instance of it (see [`Self::uninstall_instance`]).
    pub fn uninstall_plugin(&self, name: &str) -> Result<Uninstalled, PluginHostError> {
        registry::plugin_key(name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownPlugin(name.to_owned()))?;
        let instances: Vec<Instance> = self.instances()?.into_iter().filter(|i| i.plugin == name).collect();
        // Refuse before removing anything if one of them is running.
        drop(self.hold(&instances)?);
        let mut removed = Uninstalled::default();
        for instance in &instances {
            let done = self.uninstall_instance(&instance.name)?;
            removed.instances.extend(done.instances);
            removed.plugin = removed.plugin.or(done.plugin);
        }
        if instances.is_empty() {
            if let Some(plugin) = registry::plugin_key(name).get(&*self.ledger)? {
                self.ledger.write_meta(vec![registry::plugin_key(name).delete()])?;
                self.forget_component(&plugin);
            }
            removed.plugin = Some(name.to_owned());
        }
        Ok(removed)
    }

    /// Deletes a removed or replaced component's file; runs holding it in memory finish.
    fn forget_component(&self, plugin: &InstalledPlugin) {
        let path = self.component_path(&plugin.manifest.name, &plugin.component_sha256);
        if let Err(err) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove the plugin component");
        }
        lock(&self.prepared).remove(&plugin.component_sha256);
    }

    /// Claims `instances` so no run starts while they change; fails if one is running.
    fn hold(&self, instances: &[Instance]) -> Result<Held, PluginHostError> {
        let mut running = lock(&self.running);
        if let Some(busy) = instances.iter().find(|i| running.contains(&i.name)) {
            return Err(PluginHostError::AlreadyRunning(busy.name.clone()));
        }
        let names: Vec<String> = instances.iter().map(|i| i.name.clone()).collect();
        running.extend(names.iter().cloned());
        Ok(Held { running: Arc::clone(&self.running), names })
    }

    /// One instance.
    pub fn instance(&self, name: &str) -> Result<Instance, PluginHostError> {
        registry::instance_key(name).get(&*self.ledger)?.ok_or_else(|| PluginHostError::UnknownInstance(name.to_owned()))
    }
}
