//! Checks responses against the server's own `GET /openapi.json`.
//!
//! The [`Client`](crate::client::Client) fetches the document from the
//! server it talks to and hands every response here: its status must be one
//! the document lists for the request's path and method, its media type one
//! that status lists, and a JSON body must validate (with a real JSON Schema
//! validator, formats included) against that status's schema. Every event of
//! a stream is checked against its data schema. A path or method the document
//! does not have may only be answered with an error body. Anything else
//! panics, failing the case that received it.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::client::{Response, SseEvent};

/// The media type of JSON bodies.
const JSON: &str = "application/json";

/// A parsed OpenAPI document and the validators compiled from it so far.
pub struct Document {
    doc: Value,
    validators: Mutex<HashMap<String, jsonschema::Validator>>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").finish_non_exhaustive()
    }
}

impl Document {
    /// The document in `body` (what `GET /openapi.json` answered).
    ///
    /// # Panics
    ///
    /// If it is not an OpenAPI 3.1 document.
    pub fn parse(body: &[u8]) -> Self {
        let doc: Value = serde_json::from_slice(body).expect("/openapi.json is JSON");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "not an OpenAPI 3.1 document: {}",
            doc["openapi"]
        );
        assert!(doc["paths"].is_object(), "the document has no paths");
        Document {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Every operation of the document: method (upper case) and path template.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (template, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if method != "parameters" && op.is_object() {
                    out.push((method.to_ascii_uppercase(), template.clone()));
                }
            }
        }
        out
    }

    /// Whether `method template`'s success answer is an event stream.
    pub fn streams(&self, method: &str, template: &str) -> bool {
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, r)| r["content"]["text/event-stream"].is_object())
    }

    /// Whether `method template` answers with `status` when it succeeds.
    pub fn answers(&self, method: &str, template: &str, status: u16) -> bool {
        self.doc["paths"][template][method.to_ascii_lowercase()]["responses"][status.to_string()]
            .is_object()
    }

    /// The path template (`/v1/udp/bind/{id}`) that `path` matches.
    pub fn template(&self, path: &str) -> Option<&str> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        self.doc["paths"].as_object()?.keys().find_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    part == segment || (part.starts_with('{') && !segment.is_empty())
                });
            matches.then_some(template.as_str())
        })
    }

    /// Checks one response to `method path`.
    ///
    /// # Panics
    ///
    /// If the response does not match the document.
    #[track_caller]
    pub fn check(&self, method: &str, path: &str, response: &Response) {
        if (100..200).contains(&response.status) {
            return;
        }
        let content_type = response.header("content-type");
        if content_type.is_none()
            && response.body.is_empty()
            && matches!(response.status, 400 | 431)
        {
            // hyper's own answer to a request too malformed to parse: it never
            // reached the API.
            return;
        }
        let what = format!("{method} {path} -> {}", response.status);
        let operation = self
            .template(path)
            .map(|t| &self.doc["paths"][t][method.to_ascii_lowercase()])
            .filter(|op| op.is_object());
        let Some(operation) = operation else {
            // Not an operation of the document: only an error may answer it.
            assert!(
                response.status >= 400,
                "{what}: an undocumented operation answered with success"
            );
            if content_type == Some(JSON) && !response.body.is_empty() {
                let schema = json!({ "$ref": "#/components/schemas/ErrorBody" });
                self.validate("ErrorBody", &schema, &what, &response.body);
            }
            return;
        };
        let responses = &operation["responses"];
        let status = response.status.to_string();
        let documented = [
            status.clone(),
            format!("{}XX", &status[..1]),
            "default".into(),
        ]
        .into_iter()
        .find(|key| responses[key].is_object())
        .unwrap_or_else(|| {
            panic!(
                "{what}: status not in the document (it lists {:?}); body {:?}",
                responses.as_object().map(|r| r.keys().collect::<Vec<_>>()),
                String::from_utf8_lossy(&response.body)
            )
        });
        let content = &responses[&documented]["content"];
        if method == "HEAD" || content.as_object().is_none_or(|c| c.is_empty()) {
            assert!(
                response.body.is_empty(),
                "{what}: a body where the document has none"
            );
            return;
        }
        let Some(content_type) = content_type else {
            panic!("{what}: no Content-Type; the document lists {content}");
        };
        let essence = |t: &str| t.split(';').next().unwrap_or(t).trim().to_ascii_lowercase();
        let media = content
            .as_object()
            .and_then(|c| {
                c.keys()
                    .find(|k| k.as_str() == content_type)
                    .or_else(|| c.keys().find(|k| essence(k) == essence(content_type)))
            })
            .unwrap_or_else(|| {
                panic!("{what}: Content-Type {content_type:?} not in the document's {content}")
            });
        if essence(media) == JSON {
            let key = format!(
                "{method} {} {documented}",
                self.template(path).unwrap_or(path)
            );
            self.validate(&key, &content[media]["schema"], &what, &response.body);
        }
    }

    /// Checks an event's data against the schema of its kind.
    ///
    /// # Panics
    ///
    /// If the kind is unknown or the data does not match.
    #[track_caller]
    pub fn check_event(&self, event: &SseEvent) {
        let name = match event.event.as_str() {
            "datagram" => "DatagramEventData",
            "lagged" => "LaggedEventData",
            "closed" => "ClosedEventData",
            other => panic!("event {other:?} is not documented: {event:?}"),
        };
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        self.validate(
            name,
            &schema,
            &format!("event: {}", event.event),
            event.data.as_bytes(),
        );
    }

    /// Validates `body` as JSON against `schema` (which may refer to the
    /// document's components), compiling it once under `key`.
    #[track_caller]
    fn validate(&self, key: &str, schema: &Value, what: &str, body: &[u8]) {
        let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what}: body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(body)
            )
        });
        let mut validators = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        let validator = validators.entry(key.to_owned()).or_insert_with(|| {
            // The schema's `#/components/...` references resolve against this root.
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.doc["components"],
                "allOf": [schema],
            });
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("{key}: the document's schema does not compile: {e}"))
        });
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the document ({key}): {errors:?}\nbody: {instance}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        let doc = json!({
            "openapi": "3.1.0",
            "paths": {
                "/v1/udp/bind/{id}": {
                    "delete": { "responses": {
                        "200": { "content": { "application/json": { "schema": {
                            "type": "object", "required": ["unbound"],
                            "properties": { "unbound": { "type": "string" } } } } } }
                    } }
                }
            },
            "components": { "schemas": { "ErrorBody": {
                "type": "object", "required": ["error", "message"],
                "properties": { "error": { "type": "string" }, "message": { "type": "string" } }
            } } }
        });
        Document::parse(doc.to_string().as_bytes())
    }

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), JSON.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_matching_response_passes() {
        doc().check(
            "DELETE",
            "/v1/udp/bind/abc",
            &response(200, r#"{"unbound":"abc"}"#),
        );
    }

    #[test]
    #[should_panic(expected = "does not match the document")]
    fn a_body_that_breaks_the_schema_fails() {
        doc().check(
            "DELETE",
            "/v1/udp/bind/abc",
            &response(200, r#"{"unbound":1}"#),
        );
    }

    #[test]
    #[should_panic(expected = "status not in the document")]
    fn an_undocumented_status_fails() {
        doc().check("DELETE", "/v1/udp/bind/abc", &response(418, r#"{}"#));
    }

    #[test]
    #[should_panic(expected = "undocumented operation answered with success")]
    fn success_on_an_undocumented_route_fails() {
        doc().check("GET", "/nowhere", &response(200, r#"{}"#));
    }

    #[test]
    fn errors_on_undocumented_routes_must_be_error_bodies() {
        let doc = doc();
        doc.check(
            "GET",
            "/nowhere",
            &response(404, r#"{"error":"route_not_found","message":"no"}"#),
        );
        let wrong = std::panic::catch_unwind(|| {
            doc.check("GET", "/nowhere", &response(404, r#"{"error":404}"#))
        });
        assert!(wrong.is_err());
    }

    #[test]
    fn templates_match_whole_segments() {
        let doc = doc();
        assert_eq!(
            doc.template("/v1/udp/bind/x?y=1"),
            Some("/v1/udp/bind/{id}")
        );
        assert_eq!(doc.template("/v1/udp/bind/"), None);
        assert_eq!(doc.template("/v1/udp/bind/x/y"), None);
    }
}
