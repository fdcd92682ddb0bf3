//! The command line both binaries share: `--config FILE`, `--port N`, the flags of the binary
//! that override its settings, and a subcommand (serving when none is given).

use std::path::PathBuf;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::{
    net::HostPort,
    settings::{self, Layered, SettingsError, Sources},
};

/// A flag that overrides settings: `--catalog PATH` sets `catalog.path`.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Its long name, without the dashes.
    pub long: &'static str,
    /// How `--help` names its value.
    pub value_name: &'static str,
    /// What `--help` says of it.
    pub help: &'static str,
    /// The key it sets; or, for a `HOST:PORT` value, the host's key and the port's key.
    pub keys: &'static [&'static str],
}

/// `--port N`, which both binaries have.
const PORT: Flag = Flag {
    long: "port",
    value_name: "N",
    help: "The port to serve on (server.port)",
    keys: &["server.port"],
};

/// `<binary> [--config FILE] [--port N] [FLAGS] [COMMAND]`.
#[derive(Debug, Parser)]
pub struct Cli<C: Subcommand> {
    /// TOML configuration file
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// What to do; `None` serves.
    #[command(subcommand)]
    pub command: Option<C>,
    /// The settings the flags set, as dotted keys and values.
    #[arg(skip)]
    pub overrides: Vec<(String, String)>,
}

impl<C: Subcommand> Cli<C> {
    /// Parses the process's arguments for the binary `name` (described by `about`, with
    /// `--port` and `flags`); `--help`, `--version` and mistakes print and exit, as clap does.
    pub fn parse_for(name: &'static str, about: &'static str, flags: &[Flag]) -> Self {
        let mut command = Self::command()
            .name(name)
            .bin_name(name)
            // Both binaries are versioned with the workspace.
            .version(env!("CARGO_PKG_VERSION"))
            .about(about);
        for flag in [PORT].iter().chain(flags) {
            let arg = Arg::new(flag.long)
                .long(flag.long)
                .value_name(flag.value_name)
                .help(flag.help);
            command = command.arg(match flag.keys {
                [_, _] => arg.value_parser(|text: &str| text.parse::<HostPort>()),
                _ => arg,
            });
        }
        let matches = command.get_matches();
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        for flag in [PORT].iter().chain(flags) {
            match flag.keys {
                [host, port] => {
                    if let Some(value) = matches.get_one::<HostPort>(flag.long) {
                        cli.overrides.push(((*host).into(), value.host.clone()));
                        cli.overrides.push(((*port).into(), value.port.to_string()));
                    }
                }
                keys => {
                    if let Some(value) = matches.get_one::<String>(flag.long) {
                        let set = keys.iter().map(|key| ((*key).into(), value.clone()));
                        cli.overrides.extend(set);
                    }
                }
            }
        }
        cli
    }

    /// The service's settings from every layer: defaults, the file, the environment, the flags.
    pub fn settings<T: Layered>(&self) -> Result<T, SettingsError> {
        let mut sources = Sources::from_process(T::PREFIX, self.config.clone());
        sources.overrides.extend(self.overrides.iter().cloned());
        settings::load(&sources)
    }
}
