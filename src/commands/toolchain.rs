//! WIP
use crate::{cli::ToolchainCommand, commands::Ctx};
pub fn run(_cmd: &ToolchainCommand, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("toolchain: not yet implemented")
}
