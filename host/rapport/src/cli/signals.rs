//! `signals`: an organization's relationship signals, and a rebuild of the aggregates — on
//! the store or through the daemon holding it, printing the API's JSON shapes either way.

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

use super::{Backend, SignalsCommand, parse_id, parse_time, print_json};
use rapport_graph::model::{RecordKind, Timestamp};
use rapport_signals::{Signals, SignalsConfig};

pub(super) fn signals_command(backend: &Backend, config: &SignalsConfig, command: SignalsCommand) -> anyhow::Result<()> {
    match (backend, command) {
        (Backend::Store(graph), SignalsCommand::Show { id, at }) => {
            let id = parse_id(&id)?;
            anyhow::ensure!(id.kind == RecordKind::Organization, "signals are kept for organizations (org_…), not a {:?}", id.kind);
            let signals = Signals::open(Arc::clone(graph), config.clone())?;
            signals.catch_up()?;
            print_json(&signals.organization(id, parse_time(at.as_deref())?.unwrap_or_else(Timestamp::now))?)
        }
        (Backend::Daemon(daemon), SignalsCommand::Show { id, at }) => {
            let id = parse_id(&id)?;
            let query: Vec<(&str, String)> = at.map(|at| ("at", at)).into_iter().collect();
            print_json(&daemon.get::<Value>(&format!("/v1/organizations/{id}/signals"), &query)?)
        }
        (Backend::Store(graph), SignalsCommand::Rebuild) => {
            let signals = Signals::open(Arc::clone(graph), config.clone())?;
            let position = signals.rebuild()?;
            println!("signals rebuilt from the graph, at change {position}");
            Ok(())
        }
        (Backend::Store(graph), SignalsCommand::Status) => {
            let (position, newest) = rapport_signals::position(graph)?;
            print_json(&serde_json::json!({"position": position, "newest": newest}))
        }
        (Backend::Daemon(daemon), SignalsCommand::Status) => print_json(&daemon.get::<Value>("/v1/signals/status", &[])?),
        (Backend::Daemon(daemon), SignalsCommand::Rebuild) => {
            daemon.call::<Value>(Method::POST, "/v1/signals/rebuild", &[], None)?;
            println!("the daemon is rebuilding the signals from the graph; `rapport signals status` says when it is done");
            Ok(())
        }
    }
}
