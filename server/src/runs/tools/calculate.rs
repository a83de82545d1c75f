//! `calculate`: evaluates an arithmetic expression (`exmex`: + - * / ^ %,
//! parentheses, and functions such as `sqrt`, `sin`, `ln`, `abs`).

use serde_json::{Value, json};

use super::{ServerTool, ToolContext, ToolFuture};

/// The longest expression accepted.
pub const MAX_EXPRESSION_CHARS: usize = 1_000;

pub struct Calculate;

impl ServerTool for Calculate {
    fn name(&self) -> &str {
        "calculate"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression, such as `(2 + 3) * 4` or `sqrt(2) / 2`, and returns the number."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_EXPRESSION_CHARS,
                    "description": "The expression: numbers, + - * / ^ %, parentheses, and functions such as sqrt, sin, cos, ln, abs."
                }
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    fn call<'a>(&'a self, arguments: Value, _context: &'a ToolContext) -> ToolFuture<'a> {
        Box::pin(async move {
            let expression = arguments.get("expression").and_then(Value::as_str).unwrap_or_default();
            evaluate(expression)
        })
    }
}

/// The value of `expression`, written as the shortest exact decimal.
pub fn evaluate(expression: &str) -> Result<String, String> {
    if expression.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(format!("the expression is longer than {MAX_EXPRESSION_CHARS} characters"));
    }
    let value = exmex::eval_str::<f64>(expression)
        .map_err(|err| format!("the expression could not be evaluated: {err}"))?;
    if !value.is_finite() {
        return Err(format!("the expression has no finite value ({value})"));
    }
    Ok(format_number(value))
}

/// Integers without a fraction; other numbers as Rust prints them (the
/// shortest text that reads back as the same number).
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{value:.0}") } else { value.to_string() }
}

#[cfg(test)]
mod tests {
    use super::evaluate;

    #[test]
    fn evaluates_arithmetic() {
        assert_eq!(evaluate("2 + 2").as_deref(), Ok("4"));
        assert_eq!(evaluate("(2 + 3) * 4").as_deref(), Ok("20"));
        assert_eq!(evaluate("7 / 2").as_deref(), Ok("3.5"));
        assert_eq!(evaluate("2 ^ 10").as_deref(), Ok("1024"));
        assert_eq!(evaluate("sqrt(16)").as_deref(), Ok("4"));
        assert_eq!(evaluate("-3").as_deref(), Ok("-3"));
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        assert!(evaluate("2 +").is_err());
        assert!(evaluate("x + 1").is_err());
        assert!(evaluate("1 / 0").is_err());
        assert!(evaluate("").is_err());
        assert!(evaluate(&"1+".repeat(600)).is_err());
    }
}
