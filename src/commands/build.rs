//! WIP
use crate::{cli::BuildArgs, commands::Ctx};
pub fn run(_args: &BuildArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("build: not yet implemented")
}
