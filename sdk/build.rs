//! Generates the client from the committed contract, `openapi/switchyard.yaml`,
//! with progenitor's builder interface. The SDK is never generated from code.

use std::path::Path;
use std::{env, fs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/switchyard.yaml");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let spec: openapiv3::OpenAPI = serde_yaml::from_str(&fs::read_to_string(&spec_path)?)?;
    let mut settings = progenitor::GenerationSettings::default();
    settings.with_interface(progenitor::InterfaceStyle::Builder).with_tag(progenitor::TagStyle::Merged);
    let tokens = progenitor::Generator::new(&settings).generate_tokens(&spec)?;
    let code = prettyplease::unparse(&syn::parse2(tokens)?);
    fs::write(Path::new(&env::var("OUT_DIR")?).join("switchyard.rs"), code)?;
    Ok(())
}
