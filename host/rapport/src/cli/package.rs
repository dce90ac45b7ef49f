//! `rapport plugin package`: a connector crate built into an installable package. The name,
//! version and description come from Cargo, the plugin API version from the contract the
//! component imports (what the SDK it was built with speaks), the rest from the author's
//! `plugin.toml` beside `Cargo.toml` (network requests, `cursor_format`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use rapport_plugin_host::manifest::{ApiVersion, Manifest};

const TARGET: &str = "wasm32-wasip2";

/// What `cargo metadata` says about the crate.
#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    description: Option<String>,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    crate_types: Vec<String>,
}

/// Whether `path` is a crate to package rather than a package: a directory with a
/// `Cargo.toml` and no `plugin.wasm`.
pub fn is_crate(path: &Path) -> bool {
    path.join("Cargo.toml").is_file() && !path.join("plugin.wasm").exists()
}

/// Builds the crate in `dir` (release, for `wasm32-wasip2`) and writes its package into
/// `out` (default `<dir>/package`); returns the package directory.
pub fn package(dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("Cargo.toml");
    if !manifest_path.is_file() {
        bail!("{} is not a crate: it has no Cargo.toml", dir.display());
    }
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(&manifest_path)
        .output()
        .context("cannot run cargo (is it on PATH?)")?;
    if !output.status.success() {
        bail!("cargo metadata failed for {}:\n{}", manifest_path.display(), String::from_utf8_lossy(&output.stderr));
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout).context("cannot read cargo metadata's answer")?;
    let wanted = std::fs::canonicalize(&manifest_path).with_context(|| format!("cannot resolve {}", manifest_path.display()))?;
    let package = metadata
        .packages
        .iter()
        .find(|p| std::fs::canonicalize(&p.manifest_path).is_ok_and(|path| path == wanted))
        .with_context(|| format!("cargo metadata does not list the crate of {}", manifest_path.display()))?;
    let library =
        package.targets.iter().find(|t| t.crate_types.iter().any(|c| c == "cdylib")).with_context(|| {
            format!("crate {} builds no component: add `[lib] crate-type = [\"cdylib\"]` to its Cargo.toml", package.name)
        })?;

    let status = cargo()
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest_path)
        .args(["--package", &package.name])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!(
            "building {} for {TARGET} failed ({status}); the compiler's messages are above (is the target installed? `rustup target add {TARGET}`)",
            package.name
        );
    }
    let wasm_path = metadata.target_directory.join(TARGET).join("release").join(format!("{}.wasm", library.name.replace('-', "_")));
    let wasm = std::fs::read(&wasm_path).with_context(|| format!("cannot read the built component {}", wasm_path.display()))?;
    let api = imported_api(&wasm)
        .with_context(|| format!("{} imports no rapport:connector interface: is it built with rapport-sdk?", wasm_path.display()))?;

    let manifest = plugin_manifest(dir, package, api)?;
    let out = out.map_or_else(|| dir.join("package"), Path::to_owned);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("plugin.wasm"), &wasm).with_context(|| format!("cannot write {}", out.join("plugin.wasm").display()))?;
    std::fs::write(out.join("plugin.toml"), manifest).with_context(|| format!("cannot write {}", out.join("plugin.toml").display()))?;
    // The host reads it back as it will at install, so a bad plugin.toml fails here.
    Manifest::load(&out.join("plugin.toml")).with_context(|| format!("the package's manifest in {} is not valid", out.display()))?;
    Ok(out)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The author's `plugin.toml` (if any) with the name, version, description and API filled
/// in; a name or version there that disagrees with Cargo is an error.
fn plugin_manifest(dir: &Path, package: &Package, api: ApiVersion) -> anyhow::Result<String> {
    let path = dir.join("plugin.toml");
    let mut table: toml::Table = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    for (key, cargo_value) in [("name", &package.name), ("version", &package.version)] {
        match table.get(key).and_then(toml::Value::as_str) {
            Some(written) if written != cargo_value => bail!(
                "{}: {key} is \"{written}\" but Cargo.toml says \"{cargo_value}\"; remove it from plugin.toml (the package takes Cargo's)",
                path.display()
            ),
            _ => drop(table.insert(key.to_owned(), toml::Value::String(cargo_value.clone()))),
        }
    }
    table.insert("api".to_owned(), toml::Value::String(api.to_string()));
    if !table.contains_key("description")
        && let Some(description) = &package.description
    {
        table.insert("description".to_owned(), toml::Value::String(description.clone()));
    }
    toml::to_string(&table).context("cannot write the manifest")
}

/// The newest `rapport:connector` version among the component's imports.
fn imported_api(wasm: &[u8]) -> Option<ApiVersion> {
    let mut newest: Option<ApiVersion> = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(wasmparser::Payload::ComponentImportSection(imports)) = payload else { continue };
        for import in imports.into_iter().flatten() {
            let version = import
                .name
                .name
                .strip_prefix("rapport:connector/")
                .and_then(|rest| rest.split_once('@'))
                .and_then(|(_, v)| ApiVersion::parse(v));
            newest = newest.max(version);
        }
    }
    newest
}
