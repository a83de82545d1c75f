//! Conversions shared by the wire types of every area.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// Unix seconds as a timestamp. The stores hold only times the server took
/// from its clock; one out of chrono's range is logged and shown as the epoch.
pub fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_else(|| {
        tracing::error!(seconds, "a stored time is out of range");
        DateTime::UNIX_EPOCH
    })
}

/// An email address in a request: `type: string, format: email`, taken only
/// as a JSON string. poem-openapi's `String` also takes a number or a boolean
/// (`42` arrives as `"42"`), which would let a body the spec forbids through
/// (the password reset answers 202 to any address); this refuses it with the
/// same 400 as any other field of the wrong type. The identity area checks
/// and normalises the address itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(pub String);

impl Type for EmailAddress {
    const IS_REQUIRED: bool = true;

    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "email")))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for EmailAddress {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for EmailAddress {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}
