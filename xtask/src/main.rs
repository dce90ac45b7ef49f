//! Project automation: `cargo xtask demo` runs the demo, `cargo xtask test` runs every test,
//! `cargo xtask bench` prints the benchmark figures.
//!
//! Each command prepares what it needs and fails with a hint when it cannot.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build, demo and test Rapport")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build (the tests' build: `cargo xtask test` after it compiles little more), load the
    /// demo world and serve it on 127.0.0.1:8080.
    Demo {
        /// Arguments passed to `rapport demo` (see `rapport demo --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks in release mode; each prints its figures beside its baseline.
    Bench {
        /// Arguments passed to `cargo bench` (e.g. `--bench ingest`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build everything the tests need, then run every test of the workspace.
    Test {
        /// Arguments passed to `cargo test` after the workspace selection (e.g. a filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The workspace's root directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_owned)
}

/// Where cargo builds: `CARGO_TARGET_DIR`, or `target/` in the workspace.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Builds the demo plugin (`plugins/demo`) for `wasm32-wasip2` and lays out its package
/// under the target directory; returns the package directory.
fn build_demo_plugin() -> anyhow::Result<PathBuf> {
    prepare_wasm_target()?;
    let target = target_dir();
    // The directory the test fixtures build their plugins in, so the guest dependencies
    // compile once for both.
    let wasm_target = target.join("wasm-plugins");
    let mut build = cargo();
    build.args(["build", "--release", "--target", "wasm32-wasip2", "--package", "demo", "--target-dir"]).arg(&wasm_target);
    run(build).context("building the demo plugin")?;
    let package = target.join("demo-plugin");
    std::fs::create_dir_all(&package).with_context(|| format!("cannot create {}", package.display()))?;
    let wasm = wasm_target.join("wasm32-wasip2/release/demo.wasm");
    std::fs::copy(&wasm, package.join("plugin.wasm")).with_context(|| format!("cannot copy {}", wasm.display()))?;
    std::fs::copy(workspace_root().join("plugins/demo/plugin.toml"), package.join("plugin.toml"))
        .context("cannot copy the demo plugin's manifest")?;
    Ok(package)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(mut command: Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// The Python packages the tests use: the OpenAPI validator, and the API fuzzer (pinned, so
/// a new release's checks change no result unannounced).
const PYTHON_PACKAGES: &[(&str, &str)] = &[("openapi_spec_validator", "openapi-spec-validator"), ("schemathesis", "schemathesis==4.32.5")];

/// A Python with the test packages: a virtual environment under the target directory,
/// created once and topped up when a package is missing.
fn prepare_python() -> anyhow::Result<PathBuf> {
    let has = |python: &Path, module: &str| {
        Command::new(python).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
    };
    let venv = std::path::absolute(target_dir().join("tools").join("python"))?;
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        run(create).context("creating a Python virtual environment (on Debian: apt-get install python3-venv)")?;
    }
    let missing: Vec<&str> = PYTHON_PACKAGES.iter().filter(|(module, _)| !has(&python, module)).map(|(_, package)| *package).collect();
    if !missing.is_empty() {
        let mut install = Command::new(&python);
        install.args(["-m", "pip", "install", "--quiet"]).args(&missing);
        run(install).with_context(|| format!("installing {} from PyPI", missing.join(", ")))?;
    }
    Ok(python)
}

/// The test plugins are built for `wasm32-wasip2` (by `tests/fixtures/build.rs`); add the
/// target through rustup when it is missing.
fn prepare_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|t| t.trim() == "wasm32-wasip2") => Ok(()),
        Ok(_) => {
            let mut add = Command::new("rustup");
            add.args(["target", "add", "wasm32-wasip2"]);
            run(add).context("adding the wasm32-wasip2 target the test plugins are built for")
        }
        Err(err) => bail!("cannot run rustup ({err}): install the wasm32-wasip2 target of your toolchain by hand"),
    }
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Demo { args } => {
            let package = build_demo_plugin()?;
            let mut command = cargo();
            // The dev profile (dependencies optimised, ours not): the very build the tests
            // use, so a newcomer compiles wasmtime once for both README commands. The world
            // loads in seconds either way; benchmarks alone need release.
            command.args(["run", "--package", "rapport", "--bin", "rapport", "--", "demo", "--package"]);
            command.arg(package).args(args);
            run(command)
        }
        Task::Bench { args } => {
            let mut command = cargo();
            // Each crate keeps its benchmarks; the default members hold them all.
            command.args(["bench"]);
            if args.is_empty() {
                command.arg("--benches");
            }
            command.args(args);
            run(command)
        }
        Task::Test { args } => {
            prepare_wasm_target()?;
            let python = prepare_python().context("preparing the OpenAPI validator and the API fuzzer for the tests")?;
            // End-to-end tests drive the real binary; build it first so they find it
            // next to their own executable.
            let mut build = cargo();
            build.args(["build", "--package", "rapport", "--bin", "rapport"]);
            run(build).context("building the rapport binary for the end-to-end tests")?;
            let mut test = cargo();
            test.args(["test"]).args(args).env("RAPPORT_PYTHON", python);
            run(test)
        }
    }
}
