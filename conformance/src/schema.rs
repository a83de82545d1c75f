//! Converts OpenAPI 3.0 schemas to JSON Schema 2020-12 and compiles validators from them.
//!
//! The differences handled: `$ref: '#/components/schemas/X'` points into a `$defs` section
//! holding every component schema, `nullable: true` admits `null`, boolean
//! `exclusiveMinimum`/`exclusiveMaximum` become numeric bounds, and OpenAPI-only keywords are
//! dropped. Formats are asserted when the validator knows them (`date-time`, `uuid`, ...) and
//! are annotations otherwise, so poem-openapi's `int64`/`uint64` never reject a value.

use anyhow::{Context, anyhow, bail};
use jsonschema::{Draft, Validator};
use serde_json::{Map, Value, json};

const COMPONENT_PREFIX: &str = "#/components/schemas/";
/// Keywords OpenAPI adds to the schema vocabulary; they constrain nothing here.
const OPENAPI_ONLY: [&str; 6] = ["example", "discriminator", "xml", "externalDocs", "readOnly", "writeOnly"];
/// Keywords under which `nullable` cannot be expressed by widening `type`.
const NOT_WIDENABLE: [&str; 6] = ["$ref", "allOf", "anyOf", "oneOf", "enum", "const"];

/// The spec's component schemas, converted, that every validator resolves `$ref`s against.
pub struct Schemas {
    defs: Map<String, Value>,
}

impl Schemas {
    pub fn from_document(doc: &Value) -> anyhow::Result<Self> {
        let mut defs = Map::new();
        if let Some(components) = doc.pointer("/components/schemas") {
            let components = components.as_object().context("components.schemas is not a map")?;
            for (name, schema) in components {
                defs.insert(
                    name.clone(),
                    convert(schema).with_context(|| format!("components.schemas.{name}"))?,
                );
            }
        }
        Ok(Self { defs })
    }

    /// A validator for the OpenAPI `schema`, which may refer to any component schema.
    pub fn validator(&self, schema: &Value) -> anyhow::Result<Validator> {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": self.defs,
            "allOf": [convert(schema)?],
        });
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(&root)
            .map_err(|e| anyhow!("the schema does not compile: {e}"))
    }
}

/// Rewrites one OpenAPI 3.0 schema (and every schema nested in it) as JSON Schema 2020-12.
pub fn convert(schema: &Value) -> anyhow::Result<Value> {
    let Value::Object(object) = schema else {
        return Ok(schema.clone());
    };
    let mut out = Map::new();
    for (key, value) in object {
        let converted = match key.as_str() {
            "nullable" => continue,
            keyword if OPENAPI_ONLY.contains(&keyword) || keyword.starts_with("x-") => continue,
            "$ref" => Value::String(rewrite_ref(value)?),
            "properties" => convert_each_value(value).context("properties")?,
            "allOf" | "anyOf" | "oneOf" => convert_each_item(value).with_context(|| key.clone())?,
            "items" | "additionalProperties" | "not" => convert(value).with_context(|| key.clone())?,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    numeric_exclusive_bounds(&mut out);
    Ok(if object.get("nullable") == Some(&Value::Bool(true)) { allow_null(out) } else { Value::Object(out) })
}

fn rewrite_ref(reference: &Value) -> anyhow::Result<String> {
    let reference = reference.as_str().context("`$ref` is not a string")?;
    match reference.strip_prefix(COMPONENT_PREFIX) {
        Some(name) => Ok(format!("#/$defs/{name}")),
        None => bail!("unsupported `$ref: {reference}`: only `{COMPONENT_PREFIX}...` is resolved"),
    }
}

fn convert_each_value(schemas: &Value) -> anyhow::Result<Value> {
    let schemas = schemas.as_object().context("expected a map of schemas")?;
    let converted = schemas
        .iter()
        .map(|(name, schema)| Ok((name.clone(), convert(schema).with_context(|| name.clone())?)))
        .collect::<anyhow::Result<Map<_, _>>>()?;
    Ok(Value::Object(converted))
}

fn convert_each_item(schemas: &Value) -> anyhow::Result<Value> {
    let schemas = schemas.as_array().context("expected a list of schemas")?;
    Ok(Value::Array(schemas.iter().map(convert).collect::<anyhow::Result<_>>()?))
}

/// OpenAPI 3.0 writes `minimum: 0, exclusiveMinimum: true`; JSON Schema `exclusiveMinimum: 0`.
fn numeric_exclusive_bounds(schema: &mut Map<String, Value>) {
    for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        let Some(&Value::Bool(exclusive)) = schema.get(flag) else { continue };
        schema.remove(flag);
        if !exclusive {
            continue;
        }
        if let Some(limit) = schema.remove(bound) {
            schema.insert(flag.to_owned(), limit);
        }
    }
}

/// `nullable: true`: widen a plain `type` to `[type, "null"]`; otherwise (a `$ref`, a
/// composition, an `enum` that would still reject `null`) accept either the schema or `null`.
fn allow_null(mut schema: Map<String, Value>) -> Value {
    let widenable = !NOT_WIDENABLE.iter().any(|keyword| schema.contains_key(*keyword));
    match schema.get("type") {
        Some(Value::String(kind)) if widenable => {
            let widened = json!([kind, "null"]);
            schema.insert("type".to_owned(), widened);
            Value::Object(schema)
        }
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(components: Value, schema: Value) -> anyhow::Result<Validator> {
        Schemas::from_document(&json!({ "components": { "schemas": components } }))?.validator(&schema)
    }

    #[test]
    fn nullable_widens_a_plain_type() -> anyhow::Result<()> {
        let converted = convert(&json!({ "type": "string", "nullable": true }))?;
        assert_eq!(converted, json!({ "type": ["string", "null"] }));
        let validator = validator(json!({}), json!({ "type": "string", "nullable": true }))?;
        assert!(validator.is_valid(&json!(null)));
        assert!(validator.is_valid(&json!("text")));
        assert!(!validator.is_valid(&json!(1)));
        Ok(())
    }

    #[test]
    fn refs_point_into_the_components_and_may_be_nullable() -> anyhow::Result<()> {
        let components = json!({
            "Thing": { "type": "object", "required": ["id"], "properties": { "id": { "type": "string" } } },
        });
        let schema = json!({
            "type": "object",
            "required": ["thing"],
            "properties": { "thing": { "$ref": "#/components/schemas/Thing", "nullable": true } },
        });
        let validator = validator(components, schema)?;
        assert!(validator.is_valid(&json!({ "thing": { "id": "thg_1" } })));
        assert!(validator.is_valid(&json!({ "thing": null })));
        assert!(!validator.is_valid(&json!({ "thing": {} })));
        assert!(!validator.is_valid(&json!({})));
        Ok(())
    }

    #[test]
    fn a_nullable_enum_admits_null_and_nothing_else_new() -> anyhow::Result<()> {
        let validator =
            validator(json!({}), json!({ "type": "string", "enum": ["a", "b"], "nullable": true }))?;
        assert!(validator.is_valid(&json!("a")));
        assert!(validator.is_valid(&json!(null)));
        assert!(!validator.is_valid(&json!("c")));
        Ok(())
    }

    #[test]
    fn refs_outside_the_components_are_refused() {
        let error = convert(&json!({ "$ref": "other.yaml#/Thing" })).err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("unsupported `$ref")), "{error:?}");
    }

    #[test]
    fn openapi_keywords_are_dropped_but_properties_named_like_them_stay() -> anyhow::Result<()> {
        let schema = json!({
            "type": "object",
            "example": { "example": 1 },
            "x-internal": true,
            "discriminator": { "propertyName": "kind" },
            "readOnly": true,
            "properties": { "example": { "type": "integer", "xml": { "name": "e" } } },
        });
        let converted = convert(&schema)?;
        assert_eq!(
            converted,
            json!({ "type": "object", "properties": { "example": { "type": "integer" } } })
        );
        Ok(())
    }

    #[test]
    fn boolean_exclusive_bounds_become_numeric() -> anyhow::Result<()> {
        let converted = convert(&json!({ "type": "integer", "minimum": 0, "exclusiveMinimum": true }))?;
        assert_eq!(converted, json!({ "type": "integer", "exclusiveMinimum": 0 }));
        let converted = convert(&json!({ "type": "integer", "maximum": 9, "exclusiveMaximum": false }))?;
        assert_eq!(converted, json!({ "type": "integer", "maximum": 9 }));
        Ok(())
    }

    #[test]
    fn known_formats_are_checked_and_poem_formats_are_not() -> anyhow::Result<()> {
        let counter = validator(json!({}), json!({ "type": "integer", "format": "uint64" }))?;
        assert!(counter.is_valid(&json!(u64::MAX)));
        let time = validator(json!({}), json!({ "type": "string", "format": "date-time" }))?;
        assert!(time.is_valid(&json!("2025-01-31T12:00:00Z")));
        assert!(!time.is_valid(&json!("yesterday")));
        Ok(())
    }
}
