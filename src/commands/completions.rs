//! `alertstream completions SHELL`: completion scripts generated from the CLI itself.

use anyhow::Result;
use clap_complete::Shell as Target;

use crate::cli::{self, Shell};

pub fn run(shell: Shell) -> Result<()> {
    let target = match shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
        Shell::Elvish => Target::Elvish,
        Shell::Powershell => Target::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(
        target,
        &mut cli::command_for_completion(),
        "alertstream",
        &mut script,
    );
    super::write_stdout(&script)?;
    Ok(())
}
