//! Reads the cases of one response: each example of its `application/json` content, or, for a
//! response without content (such as `204 No Content`), each entry of its `x-examples`.
//!
//! Both kinds share the conventions `x-request`, `x-setup` and `x-server` and build their
//! request the same way; only a JSON example has a `value` (and `x-volatile`) to compare.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use jsonschema::Validator;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ERROR_REQUEST_ID, Expected, JSON_MEDIA_TYPE, json_content, resolve};
use crate::replay::{RequestTemplate, XRequest};
use crate::schema::Schemas;

/// The key of a body-less response's examples, which OpenAPI 3.0 has no place for.
const BODYLESS_EXAMPLES: &str = "x-examples";

/// The operation a response belongs to, as far as building its requests goes.
pub(super) struct Target<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// The operation's JSON request body examples, by name.
    pub body_examples: &'a Map<String, Value>,
}

/// An example as read, before its `x-setup` steps are resolved against the other examples.
pub(super) struct Draft {
    pub example: String,
    pub status: u16,
    pub server: Map<String, Value>,
    pub read: Result<ReadExample, String>,
}

pub(super) struct ReadExample {
    pub expected: Expected,
    pub request: RequestTemplate,
    pub setup: Vec<XSetupStep>,
}

/// An `x-setup` step: either `{operation, example, capture}` (a request) or
/// `{outbox: latest, to, capture}` (a read of the dev outbox); which one is
/// checked when the steps are resolved.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct XSetupStep {
    pub operation: Option<String>,
    pub example: Option<String>,
    pub outbox: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

/// The spec's example object, with the conformance extensions; an `x-examples` entry has
/// the same shape without `value` and `x-volatile`.
#[derive(Deserialize)]
struct ExampleObject {
    value: Option<Value>,
    #[serde(rename = "x-volatile", default)]
    volatile: Vec<String>,
    #[serde(rename = "x-server", default)]
    server: Map<String, Value>,
    #[serde(rename = "x-request")]
    request: Option<XRequest>,
    #[serde(rename = "x-setup", default)]
    setup: Vec<XSetupStep>,
}

/// The cases of the response `key` (already resolved), one per example.
pub(super) fn read_response(
    doc: &Value,
    schemas: &Schemas,
    target: &Target<'_>,
    key: &str,
    status: u16,
    response: &Value,
) -> anyhow::Result<Vec<Draft>> {
    let bodyless = match response.get("content") {
        None => true,
        Some(Value::Object(content)) => content.is_empty(),
        Some(_) => bail!("responses.{key}.content is not a map"),
    };
    let x_examples = match response.get(BODYLESS_EXAMPLES) {
        None => None,
        Some(Value::Object(examples)) => Some(examples),
        Some(_) => bail!("responses.{key}.{BODYLESS_EXAMPLES} is not a map"),
    };
    let location = format!("responses.{key}.{BODYLESS_EXAMPLES}");
    if bodyless {
        let Some(examples) = x_examples else { return Ok(Vec::new()) };
        return read_examples(doc, examples, status, &location, |name, example| {
            read_bodyless_example(example, target, name)
        });
    }
    let mut drafts = read_json_examples(doc, schemas, target, key, status, response)?;
    if let Some(examples) = x_examples {
        // Each entry becomes a failing case, so the mistake is reported where it is.
        drafts.extend(read_examples(doc, examples, status, &location, |_, _| {
            Err(format!(
                "{BODYLESS_EXAMPLES} is only for responses without `content`; \
                 put this example under content.{JSON_MEDIA_TYPE}.examples"
            ))
        })?);
    }
    Ok(drafts)
}

/// The cases of the `application/json` examples of a response with content.
fn read_json_examples(
    doc: &Value,
    schemas: &Schemas,
    target: &Target<'_>,
    key: &str,
    status: u16,
    response: &Value,
) -> anyhow::Result<Vec<Draft>> {
    let Some(content) = json_content(response) else { return Ok(Vec::new()) };
    let Some(examples) = content.get("examples").and_then(Value::as_object) else { return Ok(Vec::new()) };
    let schema =
        content.get("schema").with_context(|| format!("responses.{key}: examples without a schema"))?;
    let validator = Arc::new(schemas.validator(schema).with_context(|| format!("responses.{key}.schema"))?);
    let location = format!("responses.{key}.examples");
    read_examples(doc, examples, status, &location, |name, example| {
        read_json_example(example, &validator, target, name)
    })
}

/// One draft per example of `examples`, each read by `read` once its object has been parsed.
fn read_examples(
    doc: &Value,
    examples: &Map<String, Value>,
    status: u16,
    location: &str,
    read: impl Fn(&str, ExampleObject) -> Result<ReadExample, String>,
) -> anyhow::Result<Vec<Draft>> {
    examples
        .iter()
        .map(|(name, example)| {
            let example = resolve(doc, example).with_context(|| format!("{location}.{name}"))?;
            let parsed = ExampleObject::deserialize(example)
                .map_err(|e| format!("the example breaks the conventions: {e}"));
            let server = parsed.as_ref().map(|parsed| parsed.server.clone()).unwrap_or_default();
            let read = parsed.and_then(|parsed| read(name, parsed));
            Ok(Draft { example: name.clone(), status, server, read })
        })
        .collect()
}

fn read_json_example(
    example: ExampleObject,
    validator: &Arc<Validator>,
    target: &Target<'_>,
    name: &str,
) -> Result<ReadExample, String> {
    let value = example.value.ok_or("the example has no `value` (`externalValue` is not replayed)")?;
    let mut volatile = example.volatile;
    if let Some(missing) = volatile.iter().find(|pointer| value.pointer(pointer).is_none()) {
        return Err(format!("x-volatile names `{missing}`, which is not in the example"));
    }
    if value.pointer(ERROR_REQUEST_ID).is_some() && !volatile.iter().any(|p| p == ERROR_REQUEST_ID) {
        volatile.push(ERROR_REQUEST_ID.to_owned());
    }
    let expected = Expected::Json { validator: Arc::clone(validator), value, volatile };
    with_request(expected, example.request, example.setup, target, name)
}

fn read_bodyless_example(
    example: ExampleObject,
    target: &Target<'_>,
    name: &str,
) -> Result<ReadExample, String> {
    if example.value.is_some() || !example.volatile.is_empty() {
        return Err("the response has no content, so its example takes no `value` or `x-volatile`".to_owned());
    }
    with_request(Expected::Empty, example.request, example.setup, target, name)
}

/// Completes an example with the request it sends, built the same way for every kind.
fn with_request(
    expected: Expected,
    x_request: Option<XRequest>,
    setup: Vec<XSetupStep>,
    target: &Target<'_>,
    name: &str,
) -> Result<ReadExample, String> {
    let request = RequestTemplate::new(
        target.method.clone(),
        target.path,
        x_request.as_ref(),
        target.body_examples,
        name,
    )?;
    Ok(ReadExample { expected, request, setup })
}
