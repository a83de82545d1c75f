//! `current_time`: the time now in an IANA time zone (`chrono-tz`), read
//! from the server's clock.

use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{ServerTool, ToolContext, ToolFuture};

pub struct CurrentTime;

impl ServerTool for CurrentTime {
    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "Returns the current date and time (RFC 3339) in an IANA time zone such as Europe/Paris; UTC when none is given."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "maxLength": 64,
                    "description": "An IANA time zone name, such as America/New_York. Default UTC."
                }
            },
            "additionalProperties": false
        })
    }

    fn call<'a>(&'a self, arguments: Value, context: &'a ToolContext) -> ToolFuture<'a> {
        Box::pin(async move {
            let zone = arguments.get("timezone").and_then(Value::as_str).unwrap_or("UTC");
            let tz: Tz = zone.parse().map_err(|_| format!("{zone:?} is not an IANA time zone name"))?;
            let local = context.now.with_timezone(&tz);
            Ok(json!({"timezone": tz.name(), "time": local.to_rfc3339()}).to_string())
        })
    }
}
