//! Misbehaving model providers for gateway examples, named in `x-server`
//! settings as `{{refusing_upstream}}` (nothing listens: connections are
//! refused) and `{{silent_upstream}}` (accepts connections, never answers).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;

use serde_json::Value;

/// Replaces the upstream placeholders in every string of `value`.
pub fn fill(value: &mut Value) -> Result<(), String> {
    match value {
        Value::String(text) if text.contains("{{") => {
            if text.contains("{{refusing_upstream}}") {
                *text = text.replace("{{refusing_upstream}}", &format!("http://{}/v1", refusing()?));
            }
            if text.contains("{{silent_upstream}}") {
                *text = text.replace("{{silent_upstream}}", &format!("http://{}/v1", silent()?));
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(fill),
        Value::Object(map) => map.values_mut().try_for_each(fill),
        _ => Ok(()),
    }
}

/// An address nothing listens on: bound for a moment, then released.
fn refusing() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// One listener for the whole run that accepts and holds every connection.
fn silent() -> Result<SocketAddr, String> {
    static SILENT: OnceLock<Result<SocketAddr, String>> = OnceLock::new();
    SILENT
        .get_or_init(|| {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a port: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            std::thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                for stream in listener.incoming().flatten() {
                    held.push(stream);
                }
            });
            Ok(addr)
        })
        .clone()
}
