//! Quickstart: ask a running Switchyard what it is and whether it is ready.
//!
//! ```sh
//! cargo run --release -p switchyard-server -- serve     # in one terminal
//! cargo run -p switchyard-examples --example quickstart # in another
//! ```
//!
//! `SWITCHYARD_URL` points it elsewhere (default `http://127.0.0.1:8000`);
//! `SWITCHYARD_API_KEY`, when set, is sent as the credential.

use switchyard_sdk::{Credential, Error, connect};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let credential = std::env::var("SWITCHYARD_API_KEY").map_or(Credential::None, Credential::ApiKey);
    let client = connect(&base_url, credential)?;

    let meta = client.meta_get().send().await?;
    println!(
        "{} {} ({} build), features: {}",
        meta.name,
        meta.version,
        meta.build.profile,
        meta.features.join(", ")
    );

    match client.ready_get().send().await {
        Ok(ready) => println!("ready: {} migrations applied", ready.migrations_applied),
        // Errors arrive as the typed envelope: a stable code, why and how to fix it.
        Err(Error::ErrorResponse(err)) => {
            println!("not ready ({}): {}", err.error.code, err.error.message);
            if let Some(fix) = &err.error.fix {
                println!("fix: {fix}");
            }
        }
        Err(other) => return Err(other.into()),
    }
    Ok(())
}
