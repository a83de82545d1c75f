//! The WebSocket drift test: every frame's JSON Schema, as schemars derives
//! it from the Rust type, against its message in `openapi/asyncapi.yaml`;
//! and the events of a run, which the document takes from the HTTP spec's
//! `RunStreamEvent`, against that union's members.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use schemars::r#gen::SchemaSettings;
use serde_json::Value;
use switchyard_server::contract;
use switchyard_server::runs::api::ws::frames::{ClientFrame, ServerFrame};

use crate::support::TestResult;

const HTTP_SCHEMAS: &str = "switchyard.yaml#/components/schemas/";

fn asyncapi() -> Result<Value, serde_yaml::Error> {
    serde_yaml::from_str(contract::ASYNCAPI_YAML)
}

/// Each variant of a tagged frame enum, by its `type`, as OpenAPI 3.0
/// schemas with local references inlined.
fn variants<T: JsonSchema>() -> Result<Vec<(String, Value)>, String> {
    let mut settings = SchemaSettings::openapi3();
    settings.inline_subschemas = true;
    let root = serde_json::to_value(settings.into_generator().into_root_schema_for::<T>())
        .map_err(|err| err.to_string())?;
    let one_of = root["oneOf"].as_array().ok_or("a frame enum's schema is a oneOf")?;
    one_of
        .iter()
        .map(|variant| {
            let name = variant["properties"]["type"]["enum"][0]
                .as_str()
                .ok_or_else(|| format!("a variant without a type: {variant}"))?;
            Ok((name.to_owned(), variant.clone()))
        })
        .collect()
}

/// A schema without prose, numbers compared as numbers, `required` as a set.
fn normalized(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "description" | "title" | "examples" | "example"))
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("required", Value::Array(names)) => {
                            let mut names: Vec<Value> = names.clone();
                            names.sort_by_key(|name| name.as_str().map(str::to_owned));
                            Value::Array(names)
                        }
                        _ => normalized(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Number(number) => number.as_f64().map_or(Value::Null, |n| serde_json::json!(n)),
        other => other.clone(),
    }
}

/// The payload schema of the channel `runs`'s message `name`.
fn documented_payload<'a>(doc: &'a Value, name: &str) -> Result<&'a Value, String> {
    let message = &doc["components"]["messages"][name];
    let payload = &message["payload"];
    let schema = match payload["$ref"].as_str() {
        Some(reference) => {
            let schema_name = reference.strip_prefix("#/components/schemas/").ok_or(reference)?;
            &doc["components"]["schemas"][schema_name]
        }
        None => payload,
    };
    if schema["schemaFormat"] != "application/vnd.oai.openapi;version=3.0.0" {
        return Err(format!("{name}: its payload is not an OpenAPI 3.0 schema"));
    }
    Ok(&schema["schema"])
}

fn operation_messages(doc: &Value, operation: &str) -> BTreeSet<String> {
    doc["operations"][operation]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|message| message["$ref"].as_str())
        .filter_map(|reference| reference.strip_prefix("#/channels/runs/messages/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_frame_type_matches_its_message_in_the_asyncapi_document() -> TestResult {
    let doc = asyncapi()?;
    let mut mismatches = Vec::new();
    for (name, derived) in variants::<ClientFrame>()?.into_iter().chain(variants::<ServerFrame>()?) {
        match documented_payload(&doc, &name) {
            Ok(documented) if normalized(documented) == normalized(&derived) => {}
            Ok(documented) => mismatches.push(format!(
                "{name}:\n  asyncapi.yaml: {}\n  Rust type:     {}",
                normalized(documented),
                normalized(&derived)
            )),
            Err(err) => mismatches.push(err),
        }
    }
    assert!(mismatches.is_empty(), "frames drifted from openapi/asyncapi.yaml:\n{}", mismatches.join("\n"));
    Ok(())
}

#[test]
fn the_channel_sends_every_run_event_of_the_http_spec_and_takes_every_client_frame() -> TestResult {
    let doc = asyncapi()?;
    let http = contract::openapi()?;
    let events: BTreeSet<String> =
        http["components"]["schemas"]["RunStreamEvent"]["discriminator"]["mapping"]
            .as_object()
            .ok_or("RunStreamEvent has a discriminator mapping")?
            .keys()
            .cloned()
            .collect();
    assert!(events.contains("run.completed") && events.len() >= 9, "{events:?}");
    for event in &events {
        let payload = &doc["components"]["messages"][event.as_str()]["payload"];
        let expected = format!("{HTTP_SCHEMAS}RunStreamEvent_{}", event_schema_suffix(http, event)?);
        assert_eq!(payload["schemaFormat"], "application/vnd.oai.openapi;version=3.0.0", "{event}");
        assert_eq!(payload["schema"]["$ref"].as_str(), Some(expected.as_str()), "{event}");
    }
    let client: BTreeSet<String> = variants::<ClientFrame>()?.into_iter().map(|(name, _)| name).collect();
    let server: BTreeSet<String> = variants::<ServerFrame>()?.into_iter().map(|(name, _)| name).collect();
    assert_eq!(operation_messages(&doc, "runFrames"), client, "what the client sends");
    let sent: BTreeSet<String> = server.union(&events).cloned().collect();
    assert_eq!(operation_messages(&doc, "runEvents"), sent, "what the server sends");
    let channel: BTreeSet<String> = doc["channels"]["runs"]["messages"]
        .as_object()
        .ok_or("the runs channel lists its messages")?
        .keys()
        .cloned()
        .collect();
    assert_eq!(channel, client.union(&sent).cloned().collect(), "the channel's messages");
    Ok(())
}

/// `RunStatusEvent` for `run.status`: the member the mapping names.
fn event_schema_suffix(http: &Value, event: &str) -> Result<String, String> {
    let reference = http["components"]["schemas"]["RunStreamEvent"]["discriminator"]["mapping"][event]
        .as_str()
        .ok_or_else(|| format!("no mapping for {event}"))?;
    reference
        .strip_prefix("#/components/schemas/RunStreamEvent_")
        .map(str::to_owned)
        .ok_or_else(|| format!("{event} maps to {reference}"))
}

#[test]
fn the_drift_check_notices_a_changed_frame() -> TestResult {
    let doc = asyncapi()?;
    let (name, derived) = variants::<ClientFrame>()?
        .into_iter()
        .find(|(name, _)| name == "tool.output")
        .ok_or("tool.output")?;
    let mut changed = documented_payload(&doc, &name)?.clone();
    assert_eq!(normalized(&changed), normalized(&derived));
    changed["required"] = serde_json::json!(["type", "run_id"]);
    assert_ne!(normalized(&changed), normalized(&derived));
    Ok(())
}
