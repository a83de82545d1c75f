//! Runnable programs that use the Switchyard SDK live in this folder; run one with `cargo run -p switchyard-examples --example <name>`.
