//! The commands behind `snbox`'s subcommands. `main.rs` parses arguments and maps outcomes
//! to exit codes; each command lives here.

pub mod config;
pub mod pair;
pub mod probe;
pub mod run;

/// A failure the user caused (exit 2) rather than the machine (exit 1).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Text,
}
