//! The HTTP API over loopback with a real client.

use serde_json::{Value, json};

use crate::harness::{TOKEN, TestServer};

fn org(external_id: &str, name: &str, domain: &str) -> Value {
    json!({"op": "upsert_organization", "external_id": external_id, "name": name, "domains": [domain]})
}

#[test]
fn requests_need_a_valid_token_except_health() {
    let server = TestServer::start();
    let url = format!("{}/v1/stats", server.base);
    let missing = server.client.get(&url).send().unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.json::<Value>().unwrap()["error"], "unauthorized");
    assert_eq!(server.client.get(&url).bearer_auth("wrong").send().unwrap().status(), 401);
    assert_eq!(server.client.get(&url).bearer_auth(TOKEN).send().unwrap().status(), 200);
    assert_eq!(server.client.get(format!("{}/healthz", server.base)).send().unwrap().status(), 200);
    assert_eq!(server.client.get(format!("{}/readyz", server.base)).send().unwrap().status(), 200);
}

#[test]
fn ingest_applies_a_batch_and_queries_see_it() {
    let server = TestServer::start();
    let batch = json!({"source": "crm", "operations": [
        org("c1", "Acme", "acme.com"),
        {"op": "upsert_person", "external_id": "p1", "name": "Anna Novak", "emails": ["anna@acme.com"], "works_at": [{"organization": "c1"}]},
        {"op": "upsert_interaction", "external_id": "i1", "kind": "meeting", "occurred_at": "2026-05-01T10:00:00Z",
         "participants": [{"person": "p1"}, {"email": "ben@northwind.example"}]},
    ]});
    let response = server.post("/v1/ingest", &batch);
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().unwrap()["applied"], 3);

    let found = server.get_json("/v1/organizations/search?q=acme.com");
    let id = found["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(server.get_json("/v1/organizations/search?q=acm")["items"][0]["id"], id.as_str());
    assert_eq!(server.get_json("/v1/people/search?q=anna@acme.com")["items"][0]["name"], "Anna Novak");
    let at_acme = server.get_json("/v1/people/search?q=acme.com");
    assert_eq!(at_acme["items"].as_array().unwrap().len(), 1, "people by domain: those of its organization");
    assert_eq!(at_acme["items"][0]["name"], "Anna Novak");
    let people = server.get_json("/v1/people?limit=1");
    assert_eq!(people["items"].as_array().unwrap().len(), 1);
    let rest = server.get_json(&format!("/v1/people?after={}", people["next"].as_str().unwrap()));
    assert_eq!(rest["items"].as_array().unwrap().len(), 1, "two people in all: Anna and Ben");
    assert!(rest["next"].is_null());

    let context = server.get_json(&format!("/v1/organizations/{id}/context?at=2026-05-02T00:00:00Z"));
    assert_eq!(context["people"][0]["person"]["name"], "Anna Novak");
    assert_eq!(context["recent_interactions"][0]["kind"], "meeting");
    assert_eq!(context["engagement"]["interactions_last_90d"], 1);
    assert_eq!(context["relationship_holders"][0]["interactions_90d"], 1);

    let timeline = server.get_json(&format!("/v1/organizations/{id}/timeline?from=2026-04-01T00:00:00Z&to=2026-06-01T00:00:00Z"));
    assert_eq!(timeline["items"].as_array().unwrap().len(), 1);
    let empty = server.get_json(&format!("/v1/organizations/{id}/timeline?to=2026-05-01T00:00:00Z"));
    assert_eq!(empty["items"].as_array().unwrap().len(), 0, "`to` is exclusive");
}

#[test]
fn a_bad_batch_is_rejected_whole_with_every_bad_path() {
    let server = TestServer::start();
    let batch = json!({"source": "crm", "operations": [
        org("c1", "Acme", "acme.com"),
        {"op": "upsert_person", "external_id": "p1", "emails": ["nope"]},
        {"op": "upsert_interaction", "external_id": "i1", "kind": "fax", "occurred_at": "2026-05-01T10:00:00Z", "participants": []},
        {"op": "upsert_organization", "external_id": "c2", "name": "Globex", "colour": "red"},
        {"op": "upsert_deal", "external_id": "d1", "organization": "c1", "stage": "won", "amount": "lots"},
    ]});
    let response = server.post("/v1/ingest", &batch);
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "bad_request");
    let paths: Vec<&str> = body["details"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["operations[1].emails[0]", "operations[2].kind", "operations[3].colour", "operations[4].amount"]);
    assert!(body["details"][2]["message"].as_str().unwrap().contains("colour"));
    assert_eq!(server.get_json("/v1/stats")["organizations"], 0, "nothing of the batch is visible");

    // A reference that only fails while applying rejects the batch too.
    let dangling = json!({"source": "crm", "operations": [org("c1", "Acme", "acme.com"),
        {"op": "add_observation", "external_id": "o1", "about": {"id": "org_01J9Z3K4X7Q8R2M5N6P7T8V9W0"}, "text": "x"}]});
    let response = server.post("/v1/ingest", &dangling);
    assert_eq!(response.status(), 422, "well formed, but it names no record");
    assert_eq!(response.json::<Value>().unwrap()["details"][0]["path"], "operations[1].about.id");
    assert_eq!(server.get_json("/v1/stats")["organizations"], 0);
}

#[test]
fn malformed_json_and_wrong_types_name_the_field() {
    let server = TestServer::start();
    let response = server
        .client
        .post(format!("{}/v1/ingest", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"source\": \"crm\", \"operations\": [")
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = server.post("/v1/ingest", &json!({"source": 7, "operations": []}));
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().unwrap()["details"][0]["path"], "source");
    let response = server.post("/v1/ingest", &json!({"source": "bad source!", "operations": []}));
    assert_eq!(response.json::<Value>().unwrap()["details"][0]["path"], "source");
}

#[test]
fn oversized_bodies_get_413_naming_the_limit() {
    let server = TestServer::with_body_limit(4096);
    let operations: Vec<Value> = (0..200).map(|i| org(&format!("c{i}"), "Acme", "acme.com")).collect();
    let response = server.post("/v1/ingest", &json!({"source": "crm", "operations": operations}));
    assert_eq!(response.status(), 413);
    let body: Value = response.json().unwrap();
    assert!(body["message"].as_str().unwrap().contains("4096 bytes"), "{body}");
    let small = server.post("/v1/ingest", &json!({"source": "crm", "operations": [org("c1", "Acme", "acme.com")]}));
    assert_eq!(small.status(), 200, "a body under the limit passes");
}

#[test]
fn unknown_ids_are_404_and_malformed_ids_400() {
    let server = TestServer::start();
    let missing = server.get("/v1/organizations/org_01J9Z3K4X7Q8R2M5N6P7T8V9W0/context");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().unwrap()["error"], "not_found");
    assert_eq!(server.get("/v1/people/per_01J9Z3K4X7Q8R2M5N6P7T8V9W0").status(), 404);
    assert_eq!(server.get("/v1/organizations/per_01J9Z3K4X7Q8R2M5N6P7T8V9W0").status(), 404);
    assert_eq!(server.get("/v1/organizations/acme").status(), 400);
    assert_eq!(server.get("/v1/nowhere").status(), 404);
}

#[test]
fn observations_are_recorded_and_shown_in_context() {
    let server = TestServer::start();
    server.post("/v1/ingest", &json!({"source": "crm", "operations": [org("c1", "Acme", "acme.com")]}));
    let id = server.get_json("/v1/organizations/search?q=acme")["items"][0]["id"].as_str().unwrap().to_owned();
    let response = server.post(
        "/v1/observations",
        &json!({"about": id, "text": "Needs the deadline: the investor pushes", "tags": ["motive"], "author_email": "anna@northwind.example"}),
    );
    assert_eq!(response.status(), 201);
    let created: Value = response.json().unwrap();
    assert!(created["id"].as_str().unwrap().starts_with("obs_"));
    let context = server.get_json(&format!("/v1/organizations/{id}/context"));
    assert_eq!(context["observations"][0]["text"], "Needs the deadline: the investor pushes");
    assert_eq!(context["observations"][0]["tags"][0], "motive");
    assert_eq!(context["observations"][0]["provenance"]["source"], "api");

    server.post("/v1/observations", &json!({"about": id, "text": "Slow to sign", "tags": ["decision-style"]}));
    let motives = server.get_json(&format!("/v1/organizations/{id}/observations?tag=motive"));
    assert_eq!(motives["items"].as_array().unwrap().len(), 1);
    let all = server.get_json(&format!("/v1/organizations/{id}/observations"));
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(all["items"][0]["text"], "Slow to sign", "newest first");

    let unknown = server.post("/v1/observations", &json!({"about": "org_01J9Z3K4X7Q8R2M5N6P7T8V9W0", "text": "x"}));
    assert_eq!(unknown.status(), 404);
    let bad_tag = server.post("/v1/observations", &json!({"about": id, "text": "x", "tags": ["Not A Tag"]}));
    assert_eq!(bad_tag.status(), 400);
    assert_eq!(bad_tag.json::<Value>().unwrap()["details"][0]["path"], "tags[0]");
}

#[test]
fn merges_can_be_listed_undone_and_pinned() {
    let server = TestServer::start();
    server.post("/v1/ingest", &json!({"source": "crm", "operations": [org("c1", "Acme", "acme.com"), org("c2", "Globex", "globex.com")]}));
    server.post(
        "/v1/ingest",
        &json!({"source": "billing", "operations": [org("b1", "ACME GmbH", "acme.com"), org("b2", "Globex", "globex-group.com")]}),
    );
    let merges = server.get_json("/v1/merges");
    let merge = &merges["items"][0];
    assert_eq!(merge["reason"], "shared domain acme.com");
    let merge_id = merge["id"].as_str().unwrap().to_owned();
    assert!(merge_id.starts_with("mrg_"));
    let (winner, loser) = (merge["winner"].as_str().unwrap().to_owned(), merge["loser"].as_str().unwrap().to_owned());
    assert_eq!(server.get_json(&format!("/v1/organizations/{loser}"))["id"], winner.as_str());

    let undone = server.post(&format!("/v1/merges/{merge_id}/undo"), &json!(null));
    assert_eq!(undone.status(), 200);
    assert!(undone.json::<Value>().unwrap()["undone_at"].is_string());
    assert_eq!(server.get_json(&format!("/v1/organizations/{loser}"))["id"], loser.as_str());
    assert_eq!(server.post(&format!("/v1/merges/{merge_id}/undo"), &json!(null)).status(), 409);
    assert_eq!(server.post("/v1/merges/mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0/undo", &json!(null)).status(), 404);

    // Same name, no shared domain: on the review list, then dismissed with a pin.
    let review = server.get_json("/v1/duplicates");
    assert_eq!(review["items"].as_array().unwrap().len(), 1, "{review}");
    let (a, b) = (review["items"][0]["a"].clone(), review["items"][0]["b"].clone());
    assert_eq!(server.post("/v1/pins", &json!({"a": a, "b": b})).status(), 201);
    assert_eq!(server.get_json("/v1/duplicates")["items"].as_array().unwrap().len(), 0);
    let refused = server.post("/v1/merges", &json!({"a": a, "b": b}));
    assert_eq!(refused.status(), 409, "a pinned pair cannot be merged");
    let mixed = server.post("/v1/merges", &json!({"a": winner, "b": "per_01J9Z3K4X7Q8R2M5N6P7T8V9W0"}));
    assert_eq!(mixed.status(), 422, "two well-formed ids of different kinds cannot be merged");
}

#[test]
fn suggestions_are_ranked_with_their_reasons_and_accepted_or_rejected() {
    let server = TestServer::start();
    let person =
        |id: &str, name: &str| json!({"op": "upsert_person", "external_id": id, "name": name, "works_at": [{"organization": "c1"}]});
    let operations = [
        org("c1", "Acme", "acme.com"),
        person("p1", "Rafael Novak"),
        person("p2", "R. Novak"),
        person("p3", "Robert Stone"),
        person("p4", "Bob Stone"),
    ];
    assert_eq!(server.post("/v1/ingest", &json!({"source": "crm", "operations": operations})).status(), 200);
    let review = server.get_json("/v1/duplicates");
    let items = review["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{review}");
    assert_eq!((items[0]["case"].as_str(), items[0]["score"].as_f64()), (Some("same_organization"), Some(0.85)), "the nickname first");
    assert_eq!(items[0]["reasons"], json!(["the same surname and a nickname (Bob Stone ~ Robert Stone)", "both at Acme"]));
    assert_eq!(items[1]["score"].as_f64(), Some(0.75), "then the initial");

    let pair = |item: &Value| json!({"a": item["a"], "b": item["b"]});
    let accepted = server.post("/v1/duplicates/accept", &pair(&items[0]));
    assert_eq!(accepted.status(), 201);
    let merge = accepted.json::<Value>().unwrap();
    assert!(merge["reason"].as_str().unwrap().starts_with("accepted: the same surname and a nickname"), "{merge}");
    assert_eq!(server.post("/v1/duplicates/reject", &pair(&items[1])).status(), 201);
    assert_eq!(server.get_json("/v1/duplicates?min_score=0")["items"], json!([]), "both decided");
    assert_eq!(server.post("/v1/duplicates/accept", &pair(&items[1])).status(), 409, "a rejected pair stays apart");
    let bad = server.get("/v1/duplicates?min_score=1.5");
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().unwrap()["details"][0]["path"], "min_score");
}

/// Replaces path parameters with ids of the right shape.
fn concrete_path(path: &str) -> String {
    let id = if path.starts_with("/v1/people") {
        "per_01J9Z3K4X7Q8R2M5N6P7T8V9W0"
    } else if path.starts_with("/v1/merges") {
        "mrg_01J9Z3K4X7Q8R2M5N6P7T8V9W0"
    } else {
        "org_01J9Z3K4X7Q8R2M5N6P7T8V9W0"
    };
    path.replace("{id}", id)
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_openapi_document_is_valid_and_matches_the_router() {
    let server = TestServer::start();
    let response = server.client.get(format!("{}/v1/openapi.json", server.base)).send().unwrap();
    assert_eq!(response.status(), 200, "served without a token");
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {target}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling reference {target}");
    }

    // A real validator agrees.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let python = std::env::var("RAPPORT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .args(["-c", "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))"])
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run the tests with `cargo xtask test`, which prepares it"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named"),
        "openapi-spec-validator is missing for {python}: run the tests with `cargo xtask test`, which installs it, \
         or `pip install openapi-spec-validator`"
    );
    assert!(output.status.success(), "the OpenAPI document is invalid: {stderr}");

    // Every documented operation is served, and no undocumented method on those paths is.
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, item) in paths {
        let url = format!("{}{}", server.base, concrete_path(path));
        for method in ["get", "post", "put", "patch", "delete"] {
            let request = match method {
                "get" => server.client.get(&url),
                "post" => server.client.post(&url).json(&json!({})),
                "put" => server.client.put(&url).json(&json!({})),
                "patch" => server.client.patch(&url).json(&json!({})),
                _ => server.client.delete(&url),
            };
            let response = request.bearer_auth(TOKEN).send().unwrap();
            let status = response.status().as_u16();
            let body = response.text().unwrap();
            if item.get(method).is_some() {
                assert_ne!(status, 405, "{method} {path} is documented but not served");
                assert!(!body.contains("no such route"), "{method} {path} is documented but not served");
            } else {
                assert_eq!(status, 405, "{method} {path} is served but not documented");
            }
        }
    }
}

/// The value of one sample line of a Prometheus exposition, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn metrics_count_requests_and_ingested_operations() {
    let server = TestServer::start();
    let scrape = || server.client.get(format!("{}/metrics", server.base)).send().unwrap().text().unwrap();
    let before = scrape();
    let batch = json!({"source": "crm", "operations": [org("c1", "Acme", "acme.com"), org("c2", "Globex", "globex.com")]});
    assert_eq!(server.post("/v1/ingest", &batch).status(), 200);
    let bad = json!({"source": "crm", "operations": [{"op": "upsert_person", "external_id": "p1", "emails": ["nope"]}]});
    assert_eq!(server.post("/v1/ingest", &bad).status(), 400);
    let after = scrape();

    // Other tests share the process-wide registry, so compare differences.
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(delta(r#"rapport_ingest_operations_total{outcome="applied"}"#) >= 2.0);
    assert!(delta(r#"rapport_ingest_batches_total{outcome="committed"}"#) >= 1.0);
    assert!(delta(r#"rapport_http_requests_total{method="POST",route="/v1/ingest",status="200"}"#) >= 1.0);
    assert!(delta(r#"rapport_http_requests_total{method="POST",route="/v1/ingest",status="400"}"#) >= 1.0);
    assert!(after.contains("# TYPE rapport_http_request_duration_seconds histogram"));
    assert!(!after.contains("org_"), "no unbounded label values such as ids");
}

#[test]
fn made_up_methods_do_not_create_metric_series() {
    let server = TestServer::start();
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("ZZ{i}").as_bytes()).unwrap();
        let response = server.client.request(method, format!("{}/healthz", server.base)).send().unwrap();
        assert_eq!(response.status(), 405);
    }
    let metrics = server.client.get(format!("{}/metrics", server.base)).send().unwrap().text().unwrap();
    assert!(!metrics.contains("ZZ"), "a made-up method became a label value");
    assert!(sample(&metrics, r#"rapport_http_requests_total{method="other",route="/healthz",status="405"}"#) >= 20.0, "{metrics}");
}

/// The JSON error body of a response that must be a 400 about `path`.
fn bad_request_about(response: reqwest::blocking::Response, path: &str) -> Value {
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "bad_request", "{body}");
    assert_eq!(body["details"][0]["path"], path, "{body}");
    body
}

#[test]
fn every_rejection_is_a_json_error_naming_the_parameter() {
    let server = TestServer::start();
    bad_request_about(server.get("/v1/organizations?limit=abc"), "limit");
    bad_request_about(server.get("/v1/organizations?colour=red"), "colour");
    bad_request_about(server.get("/v1/organizations/search"), "q");
    bad_request_about(server.get("/v1/organizations/%FF%FE"), "id");
    bad_request_about(server.get("/v1/organizations/org_01J9Z3K4X7Q8R2M5N6P7T8V9W0/context?recent=0"), "recent");
    let response = server
        .client
        .post(format!("{}/v1/ingest", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"source": "crm", "operations": [{"op": }]}"#)
        .send()
        .unwrap();
    let body = bad_request_about(response, "");
    assert!(body["details"][0]["message"].as_str().unwrap().starts_with("malformed JSON"), "{body}");
    bad_request_about(server.post("/v1/observations", &json!({"about": "acme", "text": "x"})), "about");
    let deal = server.post("/v1/observations", &json!({"about": "deal_01J9Z3K4X7Q8R2M5N6P7T8V9W0", "text": "x"}));
    assert_eq!(deal.status(), 422, "a well-formed id of the wrong kind cannot be applied");
    bad_request_about(server.post("/v1/observations", &json!({"text": "x"})), "about");
    // Well formed, but an interval that ends before it starts: 422, naming the field.
    let backwards = server.post(
        "/v1/ingest",
        &json!({"source": "crm", "operations": [
        {"op": "link", "relation": "works_at", "person": "p1", "organization": "c1",
         "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}]}),
    );
    assert_eq!(backwards.status(), 422);
    assert_eq!(backwards.json::<Value>().unwrap()["details"][0]["path"], "operations[0].until");
    let unknown = server.post("/v1/observations", &json!({"about": "org_01J9Z3K4X7Q8R2M5N6P7T8V9W0", "text": "x"}));
    assert_eq!(unknown.status(), 404, "a well-formed id of nothing is not found");

    // A long id is quoted in part, not echoed whole.
    let long = "x".repeat(10_000);
    let body = bad_request_about(server.get(&format!("/v1/organizations/{long}")), "id");
    assert!(body.to_string().len() < 1_000, "{} bytes", body.to_string().len());
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::start();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response =
            server.client.get(format!("{}/v1/stats", server.base)).header("authorization", format!("{scheme} {TOKEN}")).send().unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    let wrong = server.client.get(format!("{}/v1/stats", server.base)).header("authorization", format!("Basic {TOKEN}")).send().unwrap();
    assert_eq!(wrong.status(), 401);
}

/// Reads what the server sends on `stream` until it closes the connection.
fn read_until_closed(mut stream: std::net::TcpStream) -> String {
    use std::io::Read;
    // A backstop against a server that never closes; the test asserts on what arrives.
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_the_server() {
    use std::io::Write;
    use std::time::Duration;
    let server = TestServer::with_api(|api| {
        api.header_read_timeout = Duration::from_millis(500);
        api.body_read_timeout = Duration::from_millis(500);
        api.max_connections = 2;
    });
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();
    // Two clients take both places: one sends half its headers, one its headers and part
    // of a body; both then stall.
    let mut half_headers = std::net::TcpStream::connect(&addr).unwrap();
    half_headers.write_all(b"GET /v1/stats HTTP/1.1\r\nHost: rapport\r\n").unwrap();
    let mut half_body = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/ingest HTTP/1.1\r\nHost: rapport\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"source\""
    );
    half_body.write_all(head.as_bytes()).unwrap();

    // A well-behaved client waits for a place, then is served.
    let response = server.get("/v1/stats");
    assert_eq!(response.status(), 200);
    // Its place came from a stalled client the server had already cut off (closed, or
    // answered with 408): that client's socket has something to read at once.
    let cut_off = |stream: &std::net::TcpStream| {
        stream.set_nonblocking(true).unwrap();
        let done = !matches!(stream.peek(&mut [0; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        done
    };
    assert!(cut_off(&half_headers) || cut_off(&half_body), "the third client was served while two stalled ones held both places");

    let answer = read_until_closed(half_headers);
    assert!(!answer.contains("200 OK"), "the stalled request was answered: {answer}");
    let answer = read_until_closed(half_body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("api.body_read_timeout_secs"), "{answer}");
}

#[test]
fn the_change_feed_pages_in_commit_order() {
    let server = TestServer::start();
    let ops = [org("c1", "Acme", "acme.com"), org("c2", "Beta", "beta.com"), org("c3", "Gamma", "gamma.com")];
    assert_eq!(server.post("/v1/ingest", &json!({"source": "crm", "operations": ops})).status(), 200);
    let first = server.get_json("/v1/changes?limit=2");
    let seqs: Vec<u64> = first["items"].as_array().unwrap().iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(first["items"][0]["op"], "upsert");
    assert_eq!(first["items"][0]["kind"], "organization");
    assert_eq!(first["next"], "2");
    let rest = server.get_json("/v1/changes?after=2&limit=2");
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null(), "a short page is the last");
    assert!(server.get_json("/v1/changes?after=3")["items"].as_array().unwrap().is_empty());
    assert_eq!(server.get("/v1/changes?after=9007199254740992").status(), 400, "past the document's maximum");
}

#[test]
fn an_organizations_signals_include_every_committed_write_and_equal_a_rebuild() {
    let server = TestServer::start();
    let email = |id: &str, direction: &str, at: &str| {
        json!({"op": "upsert_interaction", "external_id": id, "kind": "email", "direction": direction, "occurred_at": at,
               "participants": [{"email": "anna@acme.com"}, {"email": "ben@northwind.example"}]})
    };
    let operations =
        [org("c1", "Acme", "acme.com"), email("m1", "outbound", "2026-05-01T09:00:00Z"), email("m2", "inbound", "2026-05-03T09:00:00Z")];
    assert_eq!(server.post("/v1/ingest", &json!({"source": "mail", "operations": operations})).status(), 200);
    let acme = server.get_json("/v1/organizations/search?q=acme")["items"][0]["id"].as_str().unwrap().to_owned();
    // Read straight after the write: the answer has caught up with it.
    let signals = server.get_json(&format!("/v1/organizations/{acme}/signals?at=2026-05-10T00:00:00Z"));
    assert_eq!((signals["touches_30d"].as_i64(), signals["days_since_two_way_touch"].as_i64()), (Some(2), Some(7)), "{signals}");
    assert_eq!(signals["holders"][0]["components"].as_array().map(Vec::len), Some(4), "{signals}");
    let status = server.get_json("/v1/signals/status");
    assert_eq!(status["position"], status["newest"], "{status}");

    let rebuilt = server.post("/v1/signals/rebuild", &json!({}));
    assert_eq!(rebuilt.status(), 202);
    // Reads answer 409 while it runs; the status says when it is done.
    while server.get_json("/v1/signals/status")["rebuilding"] == json!(true) {
        std::thread::yield_now();
    }
    assert_eq!(server.get_json(&format!("/v1/organizations/{acme}/signals?at=2026-05-10T00:00:00Z")), signals);
    let person = server.get_json("/v1/people/search?q=anna@acme.com")["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(server.get(&format!("/v1/organizations/{person}/signals")).status(), 404, "a person is not an organization");
    assert_eq!(server.get(&format!("/v1/organizations/{acme}/signals?at=yesterday")).status(), 400);
}
