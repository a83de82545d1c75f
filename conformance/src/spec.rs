//! Reads the replay cases out of the OpenAPI document: one [`Case`] per response example
//! (a JSON example, or an `x-examples` entry of a response without content), with the
//! request to send, the `x-setup` steps to run first and what to expect back.
//!
//! A spec that cannot be read (no `paths`, a schema that does not compile) is an error; a
//! single example that breaks the conventions becomes a case that fails with the reason.

mod responses;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use jsonschema::Validator;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::replay::RequestTemplate;
use crate::schema::Schemas;
use responses::{Draft, Target, XSetupStep};

/// The only media type whose examples are replayed.
pub const JSON_MEDIA_TYPE: &str = "application/json";
/// An error body's `request_id` differs on every request, so it is always volatile.
pub const ERROR_REQUEST_ID: &str = "/error/request_id";

const METHODS: [(&str, Method); 8] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

pub struct Spec {
    pub operations: Vec<Operation>,
}

pub struct Operation {
    pub id: String,
    pub method: Method,
    pub path: String,
    /// Every status the operation declares, in spec order.
    pub statuses: Vec<u16>,
    pub cases: Vec<Case>,
}

/// One response example to replay.
pub struct Case {
    pub example: String,
    pub status: u16,
    /// The example's `x-server` settings, applied to the server the case runs on.
    pub server: Map<String, Value>,
    /// How to replay the case, or why it cannot be.
    pub plan: Result<Plan, String>,
}

pub struct Plan {
    pub expected: Expected,
    pub setup: Vec<SetupStep>,
    pub request: RequestTemplate,
}

/// The body the reply must have.
pub enum Expected {
    /// A JSON body, valid against the response's schema and holding the example's values.
    Json {
        validator: Arc<Validator>,
        value: Value,
        /// JSON pointers whose values are checked against the schema only.
        volatile: Vec<String>,
    },
    /// No body at all: the response declares no content.
    Empty,
}

/// A step run before the case's own request, for the values it captures.
pub struct SetupStep {
    /// `operation_id/example` or `outbox/<recipient>`, for messages.
    pub label: String,
    pub action: StepAction,
    /// Variable name to a JSON pointer into the response body (a request),
    /// or to a regular expression with one group (an outbox read).
    pub capture: BTreeMap<String, String>,
}

/// What a setup step does.
pub enum StepAction {
    /// Sends the request of another example; it must answer `status`.
    Request { request: RequestTemplate, status: u16 },
    /// Reads the newest message to `to` in the server's dev outbox.
    Outbox { to: String },
}

/// The only outbox read there is: the newest message to the recipient.
const OUTBOX_LATEST: &str = "latest";

impl Spec {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // Through serde_yaml's own value first: YAML allows non-string keys (`200:`), which
        // serializing turns into the strings JSON needs.
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let doc =
            serde_json::to_value(yaml).with_context(|| format!("reading {} as JSON", path.display()))?;
        Self::from_document(&doc).with_context(|| format!("reading {}", path.display()))
    }

    fn from_document(doc: &Value) -> anyhow::Result<Self> {
        let schemas = Schemas::from_document(doc)?;
        let paths = doc.get("paths").and_then(Value::as_object).context("the spec has no `paths` map")?;
        // Per operation, its examples as read; `x-setup` steps may name any of them.
        let mut operations = Vec::new();
        let mut drafts = Vec::new();
        for (path, item) in paths {
            for (name, method) in &METHODS {
                let Some(operation) = item.get(*name) else { continue };
                let (operation, examples) = read_operation(doc, &schemas, path, method, operation)
                    .with_context(|| format!("paths.{path}.{name}"))?;
                operations.push(operation);
                drafts.push(examples);
            }
        }
        let setups: Vec<Vec<_>> = drafts
            .iter()
            .map(|examples| {
                examples
                    .iter()
                    .map(|draft| match &draft.read {
                        Ok(read) => resolve_setup(&read.setup, &operations, &drafts),
                        Err(_) => Ok(Vec::new()),
                    })
                    .collect()
            })
            .collect();
        for ((operation, examples), setups) in operations.iter_mut().zip(drafts).zip(setups) {
            for (draft, setup) in examples.into_iter().zip(setups) {
                let plan = draft.read.and_then(|read| {
                    Ok(Plan { expected: read.expected, setup: setup?, request: read.request })
                });
                operation.cases.push(Case {
                    example: draft.example,
                    status: draft.status,
                    server: draft.server,
                    plan,
                });
            }
        }
        Ok(Self { operations })
    }
}

impl Operation {
    /// Declared statuses that no example covers.
    pub fn missing_statuses(&self) -> Vec<u16> {
        self.statuses
            .iter()
            .copied()
            .filter(|status| !self.cases.iter().any(|c| c.status == *status))
            .collect()
    }
}

fn read_operation(
    doc: &Value,
    schemas: &Schemas,
    path: &str,
    method: &Method,
    operation: &Value,
) -> anyhow::Result<(Operation, Vec<Draft>)> {
    let id = operation.get("operationId").and_then(Value::as_str).context("no operationId")?;
    let body_examples = request_examples(doc, operation).context("requestBody")?;
    let target = Target { method, path, body_examples: &body_examples };
    let responses = operation.get("responses").and_then(Value::as_object).context("no `responses` map")?;
    let mut statuses = Vec::new();
    let mut drafts = Vec::new();
    for (key, response) in responses {
        let status: u16 = key
            .parse()
            .ok()
            .with_context(|| format!("response `{key}`: only numeric statuses can be replayed"))?;
        statuses.push(status);
        let response = resolve(doc, response).with_context(|| format!("responses.{key}"))?;
        drafts.extend(responses::read_response(doc, schemas, &target, key, status, response)?);
    }
    let operation = Operation {
        id: id.to_owned(),
        method: method.clone(),
        path: path.to_owned(),
        statuses,
        cases: Vec::new(),
    };
    Ok((operation, drafts))
}

/// The operation's JSON request body examples, by name.
fn request_examples(doc: &Value, operation: &Value) -> anyhow::Result<Map<String, Value>> {
    let Some(body) = operation.get("requestBody") else { return Ok(Map::new()) };
    let examples = json_content(resolve(doc, body)?).and_then(|content| content.get("examples"));
    let examples = examples.and_then(Value::as_object);
    let Some(examples) = examples else { return Ok(Map::new()) };
    examples
        .iter()
        .map(|(name, example)| {
            let value = resolve(doc, example)?
                .get("value")
                .with_context(|| format!("example `{name}` has no value"))?;
            Ok((name.clone(), value.clone()))
        })
        .collect()
}

fn resolve_setup(
    steps: &[XSetupStep],
    operations: &[Operation],
    drafts: &[Vec<Draft>],
) -> Result<Vec<SetupStep>, String> {
    steps
        .iter()
        .map(|step| {
            let (operation_id, example) = match (&step.operation, &step.example, &step.outbox, &step.to) {
                (Some(operation), Some(example), None, None) => (operation, example),
                (None, None, Some(outbox), Some(to)) => {
                    return resolve_outbox_step(outbox, to, &step.capture);
                }
                _ => {
                    return Err("x-setup step: give `operation` and `example`, or `outbox: latest` and `to`"
                        .to_owned());
                }
            };
            let label = format!("{operation_id}/{example}");
            let (_, examples) = operations
                .iter()
                .zip(drafts)
                .find(|(operation, _)| operation.id == *operation_id)
                .ok_or_else(|| format!("x-setup step {label}: no operation `{operation_id}`"))?;
            let mut found = examples.iter().filter(|draft| draft.example == *example);
            let draft = found
                .next()
                .ok_or_else(|| format!("x-setup step {label}: the operation has no such response example"))?;
            if found.next().is_some() {
                return Err(format!(
                    "x-setup step {label}: more than one response has an example of that name"
                ));
            }
            let read = draft.read.as_ref().map_err(|e| format!("x-setup step {label}: {e}"))?;
            if let Some(var) = step.capture.keys().find(|var| var.contains(':')) {
                return Err(format!(
                    "x-setup step {label}: cannot capture `{var}`: `:` in a placeholder calls a function"
                ));
            }
            if matches!(read.expected, Expected::Empty) && !step.capture.is_empty() {
                let vars: Vec<_> = step.capture.keys().map(String::as_str).collect();
                return Err(format!(
                    "x-setup step {label}: captures {} but its {} response has no body",
                    vars.join(", "),
                    draft.status
                ));
            }
            Ok(SetupStep {
                label,
                action: StepAction::Request { request: read.request.clone(), status: draft.status },
                capture: step.capture.clone(),
            })
        })
        .collect()
}

/// An `{outbox: latest, to, capture}` step: every capture must be a regular
/// expression with exactly one group.
fn resolve_outbox_step(
    outbox: &str,
    to: &str,
    capture: &BTreeMap<String, String>,
) -> Result<SetupStep, String> {
    let label = format!("outbox/{to}");
    if outbox != OUTBOX_LATEST {
        return Err(format!("x-setup step {label}: `outbox: {outbox}`; only `{OUTBOX_LATEST}` is supported"));
    }
    if capture.is_empty() {
        return Err(format!("x-setup step {label}: an outbox read captures at least one value"));
    }
    for (var, pattern) in capture {
        let groups = regex::Regex::new(pattern)
            .map_err(|e| format!("x-setup step {label}: capture `{var}`: not a regular expression: {e}"))?
            .captures_len();
        if groups != 2 || var.contains(':') {
            return Err(format!(
                "x-setup step {label}: capture `{var}` needs a name without `:` and a pattern with exactly one group"
            ));
        }
    }
    Ok(SetupStep { label, action: StepAction::Outbox { to: to.to_owned() }, capture: capture.clone() })
}

/// The `application/json` media type object of a response or request body.
fn json_content(node: &Value) -> Option<&Value> {
    node.get("content")?.get(JSON_MEDIA_TYPE)
}

/// Follows a local `$ref` (one level), as used for responses, request bodies and examples.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> anyhow::Result<&'a Value> {
    let Some(reference) = node.get("$ref") else { return Ok(node) };
    let reference = reference.as_str().context("`$ref` is not a string")?;
    let Some(pointer) = reference.strip_prefix('#') else {
        bail!("only local references are supported, not `{reference}`");
    };
    doc.pointer(pointer).with_context(|| format!("`{reference}` points nowhere"))
}
