//! Finding and driving the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use rapport::config::token_digest;
use rapport_core::hex;
use serde_json::Value;

/// The bearer token the test daemons accept.
pub const TOKEN: &str = "e2e-token-0123456789";

/// The `rapport` binary built beside the test executable (or `RAPPORT_BIN`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RAPPORT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/rapport
    let path = exe.parent().and_then(Path::parent).expect("target directory").join("rapport");
    assert!(
        path.exists(),
        "the rapport binary is not built at {}: run `cargo xtask test`, which builds it before the tests \
         (or set RAPPORT_BIN to its path)",
        path.display()
    );
    path
}

/// A `rapport` command with a store in `store` and a quiet log.
pub fn rapport(store: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .env("RAPPORT_STORE_PATH", store)
        .env("RAPPORT_API_BIND", "127.0.0.1:0")
        .env("RAPPORT_API_TOKEN_SHA256", hex(&token_digest(TOKEN)))
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE");
    command
}

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    stdout: BufReader<ChildStdout>,
    /// What it printed before its banner.
    printed: String,
}

impl Daemon {
    /// Starts `rapport serve` on a free port and waits for its "listening" line.
    pub fn start(store: &Path) -> Self {
        Self::spawn(rapport(store).arg("serve"), "rapport listening on ")
    }

    /// Starts `command` and waits for the stdout line starting with `banner`, followed
    /// by the base URL.
    pub fn spawn(command: &mut Command, banner: &str) -> Self {
        // stderr (the log) is the caller's to redirect; it is inherited otherwise.
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Owned by the daemon from here on, so a failed start still kills and reaps it.
        let mut daemon = Self { child, base: String::new(), stdout, printed: String::new() };
        let mut line = String::new();
        loop {
            line.clear();
            let read = daemon.stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "the daemon exited before its banner: {:?}", daemon.child.wait());
            if let Some(rest) = line.trim().strip_prefix(banner) {
                let url = rest.split_whitespace().next().unwrap_or_default();
                // Keep scheme://host:port only.
                let end = url.match_indices('/').nth(2).map_or(url.len(), |(i, _)| i);
                daemon.base = url[..end].to_owned();
                return daemon;
            }
            daemon.printed.push_str(&line);
        }
    }

    /// What it printed on stdout before its banner.
    pub fn output(&self) -> &str {
        &self.printed
    }

    /// Asks the daemon to stop (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "graceful shutdown should exit 0, got {exit}");
    }

    /// Kills the daemon (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path` with the test token; the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::blocking::Client::new().get(self.url(path)).bearer_auth(TOKEN).send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    /// Starts a run of `instance` over the API; its id.
    pub fn start_run(&self, instance: &str) -> String {
        let response =
            reqwest::blocking::Client::new().post(self.url(&format!("/v1/plugins/{instance}/runs"))).bearer_auth(TOKEN).send().unwrap();
        assert_eq!(response.status(), 202);
        let run: Value = response.json().unwrap();
        run["id"].as_str().unwrap().to_owned()
    }

    /// The record of run `id` of `instance`.
    pub fn run(&self, instance: &str, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/plugins/{instance}/runs/{id}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls run `id` until `done` holds for its record (the daemon's visible progress).
    pub fn wait_for_run(&self, instance: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let record = self.run(instance, id);
            if done(&record) {
                return record;
            }
            assert!(std::time::Instant::now() < deadline, "the run made no progress: {record}");
            // A poll interval, not a synchronisation: the condition above is what we wait on.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
