//! Compares two OpenAPI documents on everything that changes what a client
//! may send or receive: paths, methods, operation ids, parameters, request
//! bodies, response statuses, media types and headers, component schemas and
//! security. Descriptions, examples and `x-*` extensions are ignored.
//!
//! Both documents are flattened into a map of facts (`GET /v1/meta
//! response 200 content application/json` → canonical schema) and the maps
//! are diffed, so every difference is one readable line. Component schemas
//! are compared when an operation reaches them; committed schemas that no
//! operation uses yet (shared building blocks) are not drift.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
/// Keys that document a schema without changing what it accepts.
const DOC_KEYS: [&str; 5] = ["description", "example", "examples", "title", "externalDocs"];

/// Lists every difference between the committed spec and the generated one.
pub fn compare(committed: &Value, generated: &Value) -> Vec<String> {
    let spec = facts(committed);
    let code = facts(generated);
    let mut report = Vec::new();
    for (key, value) in &spec {
        match code.get(key) {
            None => report.push(format!("only in spec: {key} = {value}")),
            Some(other) if other != value => {
                report.push(format!("differs: {key}: spec has {value}, code has {other}"));
            }
            Some(_) => {}
        }
    }
    for (key, value) in &code {
        if !spec.contains_key(key) {
            report.push(format!("only in code: {key} = {value}"));
        }
    }
    report
}

type Facts = BTreeMap<String, String>;

fn facts(doc: &Value) -> Facts {
    let mut out = Facts::new();
    let mut used_schemas = BTreeSet::new();
    let default_security = doc.get("security");
    for (path, item) in object(doc.get("paths")) {
        let shared_params = item.get("parameters");
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{} {path}", method.to_uppercase());
            operation_facts(doc, &at, op, shared_params, default_security, &mut out);
            collect_refs(op, &mut used_schemas);
        }
    }
    for name in reachable_schemas(doc, used_schemas) {
        let schema = doc.pointer(&format!("/components/schemas/{}", escape(&name)));
        let canon = schema.map_or_else(|| "<missing>".to_owned(), |s| canonical(&schema_canon(s)));
        out.insert(format!("schema {name}"), canon);
    }
    out
}

fn operation_facts(
    doc: &Value,
    at: &str,
    op: &Value,
    shared_params: Option<&Value>,
    default_security: Option<&Value>,
    out: &mut Facts,
) {
    out.insert(at.to_owned(), "exists".to_owned());
    let op_id = op.get("operationId").and_then(Value::as_str).unwrap_or("<none>");
    out.insert(format!("{at} operationId"), op_id.to_owned());

    let params = array(shared_params).iter().chain(array(op.get("parameters")).iter());
    for param in params {
        let param = resolve(doc, param);
        let location = param.get("in").and_then(Value::as_str).unwrap_or("?");
        let mut name = param.get("name").and_then(Value::as_str).unwrap_or("?").to_owned();
        if location == "header" {
            name = name.to_ascii_lowercase();
        }
        let required = param.get("required").and_then(Value::as_bool).unwrap_or(false);
        let schema = param.get("schema").map(schema_canon).unwrap_or(Value::Null);
        out.insert(
            format!("{at} parameter {location}:{name}"),
            format!("required={required} schema={}", canonical(&schema)),
        );
    }

    if let Some(body) = op.get("requestBody") {
        let body = resolve(doc, body);
        let required = body.get("required").and_then(Value::as_bool).unwrap_or(false);
        out.insert(format!("{at} requestBody required"), required.to_string());
        for (media, content) in object(body.get("content")) {
            let schema = content.get("schema").map(schema_canon).unwrap_or(Value::Null);
            out.insert(format!("{at} requestBody {}", media_type(media)), canonical(&schema));
        }
    }

    for (status, response) in object(op.get("responses")) {
        let response = resolve(doc, response);
        out.insert(format!("{at} response {status}"), "exists".to_owned());
        for (media, content) in object(response.get("content")) {
            let schema = content.get("schema").map(schema_canon).unwrap_or(Value::Null);
            out.insert(format!("{at} response {status} content {}", media_type(media)), canonical(&schema));
        }
        for (name, header) in object(response.get("headers")) {
            let header = resolve(doc, header);
            let required = header.get("required").and_then(Value::as_bool).unwrap_or(false);
            let schema = header.get("schema").map(schema_canon).unwrap_or(Value::Null);
            out.insert(
                format!("{at} response {status} header {}", name.to_ascii_lowercase()),
                format!("required={required} schema={}", canonical(&schema)),
            );
        }
    }

    let security = op.get("security").or(default_security);
    out.insert(format!("{at} security"), security_canon(security));
}

/// `[{A: []}, {B: [s]}]` → `A | B[s]`; no requirement at all → `none`.
fn security_canon(security: Option<&Value>) -> String {
    let mut alternatives: Vec<String> = array(security)
        .iter()
        .map(|requirement| {
            let mut schemes: Vec<String> = object(Some(requirement))
                .iter()
                .map(|(name, scopes)| {
                    let mut scopes: Vec<&str> =
                        array(Some(scopes)).iter().filter_map(Value::as_str).collect();
                    scopes.sort_unstable();
                    if scopes.is_empty() { name.to_string() } else { format!("{name}[{}]", scopes.join(",")) }
                })
                .collect();
            schemes.sort();
            if schemes.is_empty() { "anonymous".to_owned() } else { schemes.join("+") }
        })
        .collect();
    alternatives.sort();
    if alternatives.is_empty() { "none".to_owned() } else { alternatives.join(" | ") }
}

/// A schema with documentation stripped, refs reduced to names, and
/// equivalent spellings made identical.
fn schema_canon(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                let name = reference.rsplit('/').next().unwrap_or(reference);
                return Value::String(format!("$ref:{name}"));
            }
            let mut out = Map::new();
            for (key, value) in map {
                if DOC_KEYS.contains(&key.as_str()) || key.starts_with("x-") {
                    continue;
                }
                let value = match key.as_str() {
                    "required" | "enum" => sorted(value),
                    "nullable" | "readOnly" | "writeOnly" | "deprecated" if value == &Value::Bool(false) => {
                        continue;
                    }
                    "properties" => Value::Object(
                        object(Some(value)).iter().map(|(k, v)| ((*k).clone(), schema_canon(v))).collect(),
                    ),
                    _ => schema_canon(value),
                };
                out.insert(key.clone(), value);
            }
            simplify_all_of(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema_canon).collect()),
        other => other.clone(),
    }
}

/// `allOf: [X]` (after documentation is stripped) means just `X`.
fn simplify_all_of(mut schema: Map<String, Value>) -> Value {
    if let Some(Value::Array(parts)) = schema.get("allOf") {
        let parts: Vec<Value> =
            parts.iter().filter(|part| !matches!(part, Value::Object(m) if m.is_empty())).cloned().collect();
        if parts.len() == 1 && schema.len() == 1 {
            return parts.into_iter().next().unwrap_or(Value::Null);
        }
        schema.insert("allOf".to_owned(), Value::Array(parts));
    }
    Value::Object(schema)
}

fn sorted(value: &Value) -> Value {
    let mut items = array(Some(value)).clone();
    items.sort_by_key(canonical);
    Value::Array(items)
}

/// Compact JSON with object keys in sorted order.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let body: Vec<String> =
                entries.into_iter().map(|(k, v)| format!("{}:{v}", Value::String(k.clone()))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        // `200` and `200.0` are the same bound.
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `application/json; charset=utf-8` and `application/json` are one media type.
fn media_type(raw: &str) -> String {
    raw.split(';').next().unwrap_or(raw).trim().to_ascii_lowercase()
}

/// Follows a local `$ref` to a component (parameter, response, header, body).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(value),
        None => value,
    }
}

fn collect_refs(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child.as_str()) {
                    ("$ref", Some(reference)) => {
                        if let Some(name) = reference.strip_prefix("#/components/schemas/") {
                            into.insert(name.to_owned());
                        }
                    }
                    _ => collect_refs(child, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}

/// Closes `roots` over the schema references, following responses, headers and
/// parameters that operations reach through `$ref` as well.
fn reachable_schemas(doc: &Value, roots: BTreeSet<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<String> = roots.into_iter().collect();
    // Operations may reach schemas through component responses/parameters.
    for kind in ["responses", "parameters", "headers", "requestBodies"] {
        let mut referenced = BTreeSet::new();
        for (_, item) in object(doc.get("paths")) {
            collect_component_refs(item, kind, &mut referenced);
        }
        for name in referenced {
            if let Some(component) = doc.pointer(&format!("/components/{kind}/{}", escape(&name))) {
                let mut inner = BTreeSet::new();
                collect_refs(component, &mut inner);
                pending.extend(inner);
            }
        }
    }
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = doc.pointer(&format!("/components/schemas/{}", escape(&name))) {
            let mut inner = BTreeSet::new();
            collect_refs(schema, &mut inner);
            pending.extend(inner.into_iter().filter(|n| !seen.contains(n)));
        }
    }
    seen
}

fn collect_component_refs(value: &Value, kind: &str, into: &mut BTreeSet<String>) {
    let prefix = format!("#/components/{kind}/");
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child.as_str()) {
                    ("$ref", Some(reference)) => {
                        if let Some(name) = reference.strip_prefix(&prefix) {
                            into.insert(name.to_owned());
                        }
                    }
                    _ => collect_component_refs(child, kind, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_component_refs(item, kind, into)),
        _ => {}
    }
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn object(value: Option<&Value>) -> Vec<(&String, &Value)> {
    value.and_then(Value::as_object).map(|m| m.iter().collect()).unwrap_or_default()
}

fn array(value: Option<&Value>) -> &Vec<Value> {
    static EMPTY: Vec<Value> = Vec::new();
    value.and_then(Value::as_array).unwrap_or(&EMPTY)
}

/// Drift between the committed spec and the one generated from the code, one
/// line per difference; empty when they agree.
pub fn drift_report() -> anyhow::Result<Vec<String>> {
    Ok(compare(crate::contract::openapi()?, &crate::routes::generated_spec()?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(max: u64, status: &str, op_id: &str, field_type: &str) -> Value {
        json!({
            "openapi": "3.0.3",
            "paths": {
                "/v1/things": {
                    "get": {
                        "operationId": op_id,
                        "description": "ignored",
                        "parameters": [{"in": "query", "name": "limit", "required": false,
                            "schema": {"type": "integer", "maximum": max}}],
                        "responses": {
                            "200": {"description": "ok", "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Thing"}}}},
                            status: {"description": "err", "content": {"application/json; charset=utf-8": {
                                "schema": {"$ref": "#/components/schemas/Thing"}}}}
                        }
                    }
                }
            },
            "components": {"schemas": {"Thing": {
                "type": "object", "required": ["name"], "x-note": "ignored",
                "properties": {"name": {"type": field_type, "example": "ignored"}}
            }}}
        })
    }

    #[test]
    fn identical_documents_agree() {
        let a = doc(200, "404", "thing_list", "string");
        assert_eq!(compare(&a, &a), Vec::<String>::new());
    }

    #[test]
    fn catches_a_changed_maximum() {
        let report =
            compare(&doc(200, "404", "thing_list", "string"), &doc(100, "404", "thing_list", "string"));
        assert_eq!(report.len(), 1, "{report:#?}");
        assert!(report[0].contains("parameter query:limit"), "{report:#?}");
    }

    #[test]
    fn catches_a_missing_status() {
        let report =
            compare(&doc(200, "404", "thing_list", "string"), &doc(200, "409", "thing_list", "string"));
        assert!(
            report.iter().any(|l| l.starts_with("only in spec: GET /v1/things response 404")),
            "{report:#?}"
        );
        assert!(
            report.iter().any(|l| l.starts_with("only in code: GET /v1/things response 409")),
            "{report:#?}"
        );
    }

    #[test]
    fn catches_a_renamed_operation_id() {
        let report =
            compare(&doc(200, "404", "thing_list", "string"), &doc(200, "404", "things_list", "string"));
        assert_eq!(
            report,
            vec!["differs: GET /v1/things operationId: spec has thing_list, code has things_list"]
        );
    }

    #[test]
    fn catches_a_changed_field_type() {
        let report =
            compare(&doc(200, "404", "thing_list", "string"), &doc(200, "404", "thing_list", "integer"));
        assert_eq!(report.len(), 1, "{report:#?}");
        assert!(report[0].starts_with("differs: schema Thing"), "{report:#?}");
    }

    #[test]
    fn ignores_documentation_and_media_type_parameters() {
        let mut a = doc(200, "404", "thing_list", "string");
        let b = a.clone();
        a["paths"]["/v1/things"]["get"]["summary"] = json!("A summary");
        a["components"]["schemas"]["Thing"]["description"] = json!("Docs");
        assert_eq!(compare(&a, &b), Vec::<String>::new());
    }

    #[test]
    fn unused_committed_schemas_are_not_drift_but_used_missing_ones_are() {
        let mut a = doc(200, "404", "thing_list", "string");
        let b = a.clone();
        a["components"]["schemas"]["Unused"] = json!({"type": "string"});
        assert_eq!(compare(&a, &b), Vec::<String>::new());
        let mut c = b.clone();
        c["components"]["schemas"].as_object_mut().map(|m| m.remove("Thing"));
        assert!(compare(&c, &b).iter().any(|l| l.contains("schema Thing")));
    }

    #[test]
    fn security_is_compared() {
        let a = doc(200, "404", "thing_list", "string");
        let mut b = a.clone();
        b["paths"]["/v1/things"]["get"]["security"] = json!([{"ApiKeyAuth": []}, {"BearerAuth": []}]);
        let report = compare(&a, &b);
        assert_eq!(
            report,
            vec!["differs: GET /v1/things security: spec has none, code has ApiKeyAuth | BearerAuth"]
        );
    }
}
