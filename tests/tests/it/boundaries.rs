//! The crate boundaries, read from `cargo metadata`: which crate may depend on which heavy
//! dependency, and which stages stay independent of one another. ARCHITECTURE.md states
//! the same rules; this keeps them true.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// The workspace's dependency graph: each package's direct dependencies by name, the kinds
/// of each edge (`normal`, `dev`, `build`), with the workspace's own packages marked.
struct Workspace {
    edges: BTreeMap<String, Vec<(String, BTreeSet<String>)>>,
    members: BTreeSet<String>,
}

impl Workspace {
    fn read() -> Self {
        let output = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--filter-platform", "x86_64-unknown-linux-gnu"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata runs");
        assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
        let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
        let name_of: BTreeMap<&str, &str> =
            metadata["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap())).collect();
        let members = metadata["workspace_members"].as_array().unwrap().iter().map(|id| name_of[id.as_str().unwrap()].to_owned()).collect();
        let mut edges = BTreeMap::new();
        for node in metadata["resolve"]["nodes"].as_array().unwrap() {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|dep| {
                    let kinds =
                        dep["dep_kinds"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap_or("normal").to_owned()).collect();
                    (name_of[dep["pkg"].as_str().unwrap()].to_owned(), kinds)
                })
                .collect();
            edges.insert(name_of[node["id"].as_str().unwrap()].to_owned(), deps);
        }
        Self { edges, members }
    }

    /// The workspace packages that depend directly on `dependency`, in any kind of edge.
    fn direct_dependents(&self, dependency: &str) -> BTreeSet<&str> {
        self.members.iter().filter(|member| self.edges[*member].iter().any(|(name, _)| name == dependency)).map(String::as_str).collect()
    }

    /// Everything `package` builds with for its tests: its normal and dev dependencies,
    /// and their normal dependencies, transitively (build scripts' dependencies included,
    /// since they compile too).
    fn test_closure(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = self.edges[package].iter().map(|(name, _)| name.clone()).collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.clone()) {
                let deps = self.edges[&next].iter().filter(|(_, kinds)| !kinds.iter().all(|k| k == "dev"));
                stack.extend(deps.map(|(name, _)| name.clone()));
            }
        }
        seen
    }
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

#[test]
fn heavy_dependencies_stay_in_their_crates() {
    let workspace = Workspace::read();
    assert!(workspace.members.contains("rapport-graph"), "the workspace is read: {:?}", workspace.members);
    for runtime in ["wasmtime", "wasmtime-wasi"] {
        assert_eq!(workspace.direct_dependents(runtime), set(&["rapport-plugin-host"]), "only the plugin host links {runtime}");
    }
    assert_eq!(workspace.direct_dependents("sled"), set(&["rapport-store"]), "only the store touches sled");
    for edge in ["anyhow", "clap", "indicatif"] {
        let dependents = workspace.direct_dependents(edge);
        assert!(dependents.is_subset(&set(&["rapport", "xtask", "rapport-example-api"])), "{edge} is for binaries only: {dependents:?}");
        assert!(dependents.contains("rapport"), "the binary uses {edge}");
    }
}

#[test]
fn the_graph_builds_and_tests_without_the_plugin_runtime_or_the_api() {
    let workspace = Workspace::read();
    for stage in ["rapport-ops", "rapport-store", "rapport-graph"] {
        let closure = workspace.test_closure(stage);
        for absent in ["wasmtime", "rapport-plugin-host", "rapport-fixtures", "rapport", "axum"] {
            assert!(!closure.contains(absent), "`cargo test -p {stage}` would build {absent}");
        }
    }
    for independent in ["rapport-net", "rapport-schedule"] {
        let closure = workspace.test_closure(independent);
        for absent in ["wasmtime", "rapport-graph", "rapport-plugin-host", "rapport"] {
            assert!(!closure.contains(absent), "{independent} depends on {absent}");
        }
    }
    assert!(workspace.test_closure("rapport-plugin-host").contains("wasmtime"), "the closure is followed");
}

#[test]
fn the_plugin_runtime_commits_through_its_ledger_trait_not_the_graph() {
    let workspace = Workspace::read();
    let closure = workspace.test_closure("rapport-plugin-host");
    assert!(!closure.contains("rapport-graph"), "a change to the graph would rebuild the plugin runtime");
    assert!(closure.contains("rapport-ops"), "the closure is followed");
    let binary = workspace.test_closure("rapport");
    assert!(binary.contains("rapport-graph") && binary.contains("rapport-plugin-host"), "the binary joins them");
}

/// The SDK re-exports the host's record types; `cargo tree` resolves features for the guest
/// alone (`cargo metadata` unifies them over the workspace), so it shows what a plugin links.
#[test]
fn plugins_link_the_hosts_record_types_without_the_hosts_dependencies() {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "rapport-sdk", "-e", "normal", "--prefix", "none", "--format", "{p}", "--target", "wasm32-wasip2"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).unwrap();
    let packages: BTreeSet<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(packages.contains("rapport-ops"), "the SDK shares the host's records: {packages:?}");
    for absent in ["utoipa", "rapport-core", "rapport-store", "rapport-graph", "wasmtime", "tokio", "reqwest"] {
        assert!(!packages.contains(absent), "a plugin would link {absent}: {packages:?}");
    }
}
