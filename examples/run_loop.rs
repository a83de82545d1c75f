//! Drives an agent run over the run-loop WebSocket with the SDK: the model
//! calls the client tool `get_weather`, a local async handler answers it,
//! and the run's events and final answer are printed. A dropped connection
//! is replaced and the run picked up where it was.
//!
//! ```sh
//! SWITCHYARD_API_KEY=sy_live_… cargo run -p switchyard-examples --example run_loop
//! ```
//!
//! `SWITCHYARD_URL` points it elsewhere (default `http://127.0.0.1:8000`).
//! The built-in `dev` model calls a tool whose name the user message
//! contains, with the message's JSON object as arguments. The quickstart
//! example mints a key with the `runs` scope.

use serde_json::{Value, json};
use switchyard_sdk::Credential;
use switchyard_sdk::run_loop::{RunEnd, RunEvent, RunLoop};
use switchyard_sdk::types::CreateRunRequest;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let key = std::env::var("SWITCHYARD_API_KEY").map_err(|_| anyhow::anyhow!("set SWITCHYARD_API_KEY"))?;

    let mut runs = RunLoop::connect(&base_url, Credential::Bearer(key))
        .await?
        .tool("get_weather", |args: Value| async move {
            let city = args["city"].as_str().unwrap_or("somewhere");
            // A real handler would call a weather service; its error would reach the model.
            Ok::<_, anyhow::Error>(json!({"city": city, "temperature_c": 18, "sky": "clear"}).to_string())
        })
        .on_event(|event| match event {
            RunEvent::ToolCall(call) => {
                println!(
                    "[{}] tool.call {}({}) by the {}",
                    call.seq, call.tool_call.name, call.tool_call.arguments, call.executor
                );
            }
            RunEvent::ToolResult(result) => {
                println!("[{}] tool.result {}", result.seq, result.step.output);
            }
            other => println!("[{}] {}", other.seq(), other.kind()),
        });

    let body: CreateRunRequest = serde_json::from_value(json!({
        "messages": [{"role": "user", "content": "get_weather {\"city\": \"Paris\"}"}],
        "tools": [{
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }],
    }))?;
    let outcome = runs.run(&body).await?;
    match &outcome.end {
        RunEnd::Completed { output, usage, .. } => {
            println!("{} completed ({} tokens): {}", outcome.run_id, usage.total_tokens, output.content);
        }
        RunEnd::Paused { pending_approval } => {
            println!("{} waits for an approver: {:?}", outcome.run_id, pending_approval.reason);
        }
        other => println!("{} ended: {other:?}", outcome.run_id),
    }
    runs.close().await;
    Ok(())
}
