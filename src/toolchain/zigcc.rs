//! WIP
pub fn run(_args: &crate::cli::ZigCcArgs) -> anyhow::Result<()> {
    anyhow::bail!("zig-cc: not yet implemented")
}
