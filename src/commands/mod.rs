//! One file per subcommand; each has `pub fn run(args, &Ctx)`.

pub mod build;
pub mod debug;
pub mod dockerfile;
pub mod doctor;
pub mod image;
pub mod index;
pub mod inspect;
pub mod lint;
pub mod message;
pub mod push;
pub mod targets;
pub mod toolchain;

use crate::cli::{Cli, MessageFormat};

/// What every command needs from the global flags.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub verbose: u8,
    pub quiet: bool,
    pub json: bool,
}

impl Ctx {
    pub fn new(cli: &Cli) -> Self {
        Ctx {
            verbose: cli.verbose,
            quiet: cli.quiet,
            json: cli.message_format == MessageFormat::Json,
        }
    }
}
