//! The route table's own behaviour: 404 and 405 (with `Allow`), request ids on errors, the
//! OpenAPI document against the table, and README.md's route table against the document.

use std::collections::BTreeSet;

use http_body_util::{BodyExt, Full};
use hyper::header::ALLOW;
use serde_json::Value;

use super::super::tests::fixture;
use super::super::{handle, REQUEST_ID};
use super::{Access, ROUTES};

async fn send(
    f: &super::super::tests::Fixture,
    method: &str,
    path: &str,
    request_id: Option<&str>,
) -> (hyper::StatusCode, hyper::HeaderMap, Value) {
    let mut b = hyper::Request::builder().method(method).uri(path);
    if let Some(id) = request_id {
        b = b.header(REQUEST_ID, id);
    }
    let req = b.body(Full::new(bytes::Bytes::new())).expect("request");
    let resp = handle(&f.state, req).await;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).expect("a JSON answer");
    (parts.status, parts.headers, v)
}

#[tokio::test]
async fn unknown_paths_and_bad_ids_are_404_with_a_request_id() {
    let f = fixture();
    for path in [
        "/nope",
        "/v1/tenants/",
        "/v1/tenants/tnt-a/nope",
        "/v1/tenants/bad%20id/sites",
        "/v1/tenants/a..b%2Fc/labels/x%00y",
    ] {
        let (s, h, v) = send(&f, "GET", path, None).await;
        assert_eq!(s, hyper::StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
        let id = v["error"]["request_id"].as_str().expect("request_id");
        assert!(!id.is_empty());
        assert_eq!(h.get(REQUEST_ID).map(|v| v.as_bytes()), Some(id.as_bytes()));
    }
    // The client's request id is kept and echoed.
    let (_, h, v) = send(&f, "GET", "/nope", Some("trace-123")).await;
    assert_eq!(v["error"]["request_id"], "trace-123");
    assert_eq!(
        h.get(REQUEST_ID).map(|v| v.as_bytes()),
        Some(&b"trace-123"[..])
    );
}

#[tokio::test]
async fn another_method_is_405_with_allow() {
    let f = fixture();
    for (method, path, allow) in [
        ("PUT", "/v1/tenants/tnt-a/sites", "GET,HEAD,POST"),
        ("POST", "/v1/tenants/tnt-a/subscription", "PUT"),
        ("DELETE", "/healthz", "GET,HEAD"),
        ("GET", "/v1/tenants/tnt-a/webhook/test", "POST"),
    ] {
        let (s, h, v) = send(&f, method, path, None).await;
        assert_eq!(s, hyper::StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(v["error"]["code"], "method_not_allowed");
        assert!(v["error"]["request_id"].is_string());
        let got: BTreeSet<&str> = h
            .get(ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        let want: BTreeSet<&str> = allow.split(',').collect();
        assert_eq!(got, want, "{method} {path}");
    }
}

#[test]
fn every_route_is_declared_once_with_its_ids() {
    let mut seen = BTreeSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method.as_str(), r.path)),
            "{} {} twice",
            r.method,
            r.path
        );
        let params = super::super::openapi::path_params(r.path);
        if let Access::Tenant(_) | Access::Label = r.access {
            assert_eq!(params.first(), Some(&"tenant"), "{}", r.path);
        }
    }
}

/// `(METHOD, path)` of every operation of an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                ops.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn openapi_document_is_3_1_and_describes_the_table() {
    let f = fixture();
    // Public: no token.
    let (s, _, doc) = send(&f, "GET", "/v1/openapi.json", None).await;
    assert_eq!(s, hyper::StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(operations(&doc), table);
    let mut ids = BTreeSet::new();
    for r in ROUTES {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(ids.insert(op["operationId"].as_str().expect("operationId").to_owned()));
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        // Lists document their pages; idempotent POSTs their key.
        let names = |a: &serde_json::Value| -> Vec<String> {
            a.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let all = names(&op["parameters"]);
        if r.method == axum::http::Method::GET && r.path.ends_with("/labels") {
            for q in [
                "limit",
                "starting_after",
                "status",
                "client_reference",
                "created_after",
            ] {
                assert!(all.iter().any(|n| n == q), "{} lacks {q}", r.path);
            }
        }
        if r.method == axum::http::Method::POST && r.path.ends_with("/labels") {
            assert!(all.iter().any(|n| n == "Idempotency-Key"), "{}", r.path);
        }
        assert_eq!(
            params,
            super::super::openapi::path_params(r.path),
            "{}",
            r.path
        );
        assert_eq!(
            op.get("security").is_some(),
            r.access != Access::Public,
            "{} {}",
            r.method,
            r.path
        );
        assert_eq!(
            op.get("requestBody").is_some(),
            r.body.is_some(),
            "{}",
            r.path
        );
        // Every reference resolves.
        let text = op.to_string();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or("");
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
}

#[tokio::test]
async fn readme_route_table_matches_the_openapi_document() {
    let f = fixture();
    let (_, _, doc) = send(&f, "GET", "/v1/openapi.json", None).await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("| method | path | who | what |")
        .expect("README.md has the route table");
    let rows: BTreeSet<(String, String)> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect();
    assert_eq!(rows, operations(&doc), "README.md's route table");
}
