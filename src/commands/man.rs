//! `alertstream man [SUBCOMMAND]`: the manual pages, generated from the CLI
//! itself: alertstream(1), and alertstream-send(1) and the others it names.

use anyhow::{Context, Result};

use crate::exit::bad_input;

pub fn run(subcommand: Option<&str>) -> Result<()> {
    // Global options are shown on every page they apply to, as in --help.
    let mut cli = crate::cli::command();
    cli.build();
    let page = match subcommand {
        None => cli,
        Some(name) => {
            let names: Vec<String> = cli
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .filter(|name| name != "help")
                .collect();
            let found = cli.find_subcommand(name).cloned().ok_or_else(|| {
                bad_input(format!(
                    "man {name}: no such subcommand; pages: {}",
                    names.join(", ")
                ))
            })?;
            // clap names are 'static; the process prints one page and exits.
            let title: &'static str =
                Box::leak(format!("alertstream-{}", found.get_name()).into_boxed_str());
            // The page's footer names the version, as alertstream(1)'s does.
            found.name(title).version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .context("cannot render the manual page")?;
    super::write_stdout(&roff).context("cannot write the manual page to stdout")
}
