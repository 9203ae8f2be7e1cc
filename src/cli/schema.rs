//! `callflow schema`: prints the JSON Schema of flow files.

use std::process::ExitCode;

use clap::Args;

use crate::flow::schema::flow_schema_text;

/// Arguments of `callflow schema`.
#[derive(Debug, Args)]
#[command(
    after_help = "Bundled flows point at schema/flow.schema.json, which is this output; editors with \
                  the YAML language server use it to complete and check fields."
)]
pub struct SchemaArgs {}

/// Prints the schema.
pub fn run(_args: &SchemaArgs) -> ExitCode {
    print!("{}", flow_schema_text());
    ExitCode::SUCCESS
}
