//! `graph`, `merges`, `changes` and `observe`: reading the graph and deciding identities, on the store
//! or through the daemon holding it — the same output either way, since both paths print
//! the API's JSON shapes.

use anyhow::{Context, bail};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Backend, GraphCommand, MergesCommand, ObserveArgs, parse_id, parse_time, print_json};
use rapport_graph::model::{Change, MergeId, MergeRecord, RecordKind, Timestamp};
use rapport_graph::{ContextQuery, Suggestion};
use rapport_ops::{IngestBatch, InvalidPolicy, ObservationRecord, Operation, Subject};

/// A page of the API's listings.
#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

fn to_value(value: impl serde::Serialize) -> anyhow::Result<Value> {
    serde_json::to_value(value).context("cannot show the answer")
}

/// The API's collection for records of `kind`.
fn collection(kind: RecordKind) -> anyhow::Result<&'static str> {
    match kind {
        RecordKind::Organization => Ok("organizations"),
        RecordKind::Person => Ok("people"),
        other => bail!("this command takes an organization (org_…) or a person (per_…), not a {other:?}"),
    }
}

pub(super) fn graph_command(backend: &Backend, command: GraphCommand) -> anyhow::Result<()> {
    match command {
        GraphCommand::Show { id } => {
            let id = parse_id(&id)?;
            let shown = match (backend, collection(id.kind)?) {
                (Backend::Store(graph), "organizations") => {
                    to_value(graph.organization_context(id, ContextQuery { at: Timestamp::now(), recent: 10 })?)?
                }
                (Backend::Store(graph), _) => to_value(graph.person(id)?)?,
                (Backend::Daemon(daemon), "organizations") => {
                    daemon.get(&format!("/v1/organizations/{id}/context"), &[("recent", "10".to_owned())])?
                }
                (Backend::Daemon(daemon), _) => daemon.get(&format!("/v1/people/{id}"), &[])?,
            };
            print_json(&shown)
        }
        GraphCommand::Search { query, people } => {
            let kind = if people { RecordKind::Person } else { RecordKind::Organization };
            let found: Vec<Value> = match backend {
                Backend::Store(graph) => graph
                    .search(kind, &query, 50)?
                    .into_iter()
                    .map(|id| if people { to_value(graph.person(id)?) } else { to_value(graph.organization(id)?) })
                    .collect::<anyhow::Result<_>>()?,
                Backend::Daemon(daemon) => {
                    let path = format!("/v1/{}/search", collection(kind)?);
                    daemon.get::<Items<Value>>(&path, &[("q", query), ("limit", "50".to_owned())])?.items
                }
            };
            let keys = if people { "emails" } else { "domains" };
            for item in found {
                let listed: Vec<&str> = item[keys].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!("{}\t{}\t{}", text(&item["id"]), text(&item["name"]), listed.join(", "));
            }
            Ok(())
        }
        GraphCommand::Timeline { id, from, to, limit } => {
            let id = parse_id(&id)?;
            let page: Value = match backend {
                Backend::Store(graph) => {
                    let until = parse_time(to.as_deref())?.unwrap_or(Timestamp(i64::MAX / 2));
                    to_value(graph.timeline(id, parse_time(from.as_deref())?, until, None, limit)?)?
                }
                Backend::Daemon(daemon) => {
                    let mut query = vec![("limit", limit.to_string())];
                    query.extend(from.map(|from| ("from", from)));
                    query.extend(to.map(|to| ("to", to)));
                    daemon.get(&format!("/v1/{}/{id}/timeline", collection(id.kind)?), &query)?
                }
            };
            for item in page["items"].as_array().into_iter().flatten() {
                let when = chrono::DateTime::parse_from_rfc3339(text(&item["occurred_at"]))
                    .map(|t| t.to_utc().format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                println!("{when}\t{}\t{}\t{}", text(&item["kind"]), item["direction"].as_str().unwrap_or("-"), text(&item["subject"]));
            }
            Ok(())
        }
        GraphCommand::Stats => print_json(&match backend {
            Backend::Store(graph) => to_value(graph.stats()?)?,
            Backend::Daemon(daemon) => daemon.get::<Value>("/v1/stats", &[])?,
        }),
    }
}

/// A JSON string's text, or nothing.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn show_merge(merge: &MergeRecord) {
    let state = if merge.undone_at.is_some() { "undone" } else { "active" };
    println!("{}\t{state}\t{} ← {}\t{}", merge.id, merge.winner, merge.loser, merge.reason);
}

pub(super) fn merges_command(backend: &Backend, command: MergesCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match (backend, command) {
        (Backend::Store(graph), MergesCommand::List { limit }) => graph.merges(None, limit)?.iter().for_each(show_merge),
        (Backend::Daemon(daemon), MergesCommand::List { limit }) => {
            daemon.get::<Items<MergeRecord>>("/v1/merges", &[("limit", limit.to_string())])?.items.iter().for_each(show_merge);
        }
        (_, MergesCommand::Undo { id }) => {
            let merge: MergeId = id.parse()?;
            show_merge(&match backend {
                Backend::Store(graph) => graph.unmerge(merge, now)?,
                Backend::Daemon(daemon) => daemon.call(Method::POST, &format!("/v1/merges/{id}/undo"), &[], None)?,
            });
        }
        (Backend::Store(graph), MergesCommand::Merge { a, b, reason }) => {
            show_merge(&graph.merge_manually(parse_id(&a)?, parse_id(&b)?, reason, now)?);
        }
        (Backend::Daemon(daemon), MergesCommand::Merge { a, b, reason }) => {
            show_merge(&daemon.call(Method::POST, "/v1/merges", &[], Some(&json!({"a": a, "b": b, "reason": reason})))?);
        }
        (_, MergesCommand::Pin { a, b }) => {
            match backend {
                Backend::Store(graph) => graph.pin_apart(parse_id(&a)?, parse_id(&b)?)?,
                Backend::Daemon(daemon) => daemon.call(Method::POST, "/v1/pins", &[], Some(&json!({"a": a, "b": b})))?,
            }
            println!("pinned {a} and {b} apart");
        }
        (_, MergesCommand::Review { min_score }) => {
            if !(0.0..=1.0).contains(&min_score) {
                bail!("--min-score {min_score}: expected a score from 0 to 1");
            }
            let suggestions = match backend {
                Backend::Store(graph) => graph.duplicates(min_score, 1000)?,
                Backend::Daemon(daemon) => {
                    let query = [("limit", "1000".to_owned()), ("min_score", min_score.to_string())];
                    daemon.get::<Items<Suggestion>>("/v1/duplicates", &query)?.items
                }
            };
            for suggestion in suggestions {
                let case = serde_json::to_value(suggestion.case)?;
                println!("{:.2}\t{}\t{}\t{}\t{}", suggestion.score, text(&case), suggestion.a, suggestion.b, suggestion.reasons.join("; "));
            }
        }
        (Backend::Store(graph), MergesCommand::Accept { a, b }) => {
            show_merge(&graph.accept_duplicate(parse_id(&a)?, parse_id(&b)?, now)?);
        }
        (Backend::Daemon(daemon), MergesCommand::Accept { a, b }) => {
            show_merge(&daemon.call(Method::POST, "/v1/duplicates/accept", &[], Some(&json!({"a": a, "b": b})))?);
        }
        (_, MergesCommand::Reject { a, b }) => {
            match backend {
                Backend::Store(graph) => graph.reject_duplicate(parse_id(&a)?, parse_id(&b)?)?,
                Backend::Daemon(daemon) => daemon.call(Method::POST, "/v1/duplicates/reject", &[], Some(&json!({"a": a, "b": b})))?,
            }
            println!("rejected: {a} and {b} are pinned apart");
        }
    }
    Ok(())
}

/// `rapport changes`: one line per change — sequence number, what happened, the record, the
/// clusters it touched, the record's own time.
pub(super) fn changes(backend: &Backend, after: u64, limit: usize) -> anyhow::Result<()> {
    let changes = match backend {
        Backend::Store(graph) => graph.changes_since(after, limit)?,
        Backend::Daemon(daemon) => {
            daemon.get::<Items<Change>>("/v1/changes", &[("after", after.to_string()), ("limit", limit.min(1000).to_string())])?.items
        }
    };
    for change in changes {
        let clusters: Vec<String> = change.clusters.iter().map(ToString::to_string).collect();
        let op = serde_json::to_value(change.op)?;
        println!("{}\t{}\t{}\t{}\t{}", change.seq, text(&op), change.node, clusters.join(","), change.at.to_datetime().to_rfc3339());
    }
    Ok(())
}

pub(super) fn observe(backend: &Backend, args: ObserveArgs) -> anyhow::Result<()> {
    let graph = match backend {
        Backend::Store(graph) => graph,
        Backend::Daemon(daemon) => {
            let body = json!({"about": args.about, "text": args.text, "tags": args.tags, "author_email": args.author});
            let created: Value = daemon.call(Method::POST, "/v1/observations", &[], Some(&body))?;
            println!("recorded {}", text(&created["id"]));
            return Ok(());
        }
    };
    let external_id = ulid::Ulid::new().to_string();
    let observation = Operation::AddObservation(ObservationRecord {
        external_id: external_id.clone(),
        about: Subject { organization: None, person: None, id: Some(args.about) },
        author_email: args.author,
        text: args.text,
        tags: args.tags,
        observed_at: None,
    });
    let report = graph.ingest(IngestBatch { policy: InvalidPolicy::RejectBatch, ..IngestBatch::trusted("cli", vec![observation]) })?;
    if let Some(skipped) = report.skipped.first() {
        let reasons: Vec<String> = skipped.errors.iter().map(ToString::to_string).collect();
        bail!("observation not recorded: {}", reasons.join("; "));
    }
    let id = graph.resolve("cli", RecordKind::Observation, &external_id)?;
    println!("recorded {}", id.map(|id| id.to_string()).unwrap_or_default());
    Ok(())
}
