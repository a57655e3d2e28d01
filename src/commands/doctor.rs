//! WIP
use crate::{cli::DoctorArgs, commands::Ctx};
pub fn run(_args: &DoctorArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    anyhow::bail!("doctor: not yet implemented")
}
