//! Exit codes, documented in `--help`, and the error that carries one.

use std::fmt;

/// Kafka or I/O failure (also the default for any unexpected error).
pub const FAILURE: u8 = 1;
/// Bad usage or bad input (clap uses 2 for usage errors too).
pub const BAD_INPUT: u8 = 2;
/// Some alerts were not delivered to Kafka.
pub const UNDELIVERED: u8 = 3;

/// An error that decides the process exit code. Anything else exits with [`FAILURE`].
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// An input error (file, schema, option value): exit code [`BAD_INPUT`].
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: BAD_INPUT,
        message: message.into(),
    }
    .into()
}

/// The exit code for an error that ended the program.
pub fn code_of(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(FAILURE, |e| e.code)
}
