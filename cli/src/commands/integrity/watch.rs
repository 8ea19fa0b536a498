//! `palisade integrity watch`.

use clap::Args;

use super::scope::ScopeArgs;

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    scope: ScopeArgs,
}

pub fn run(_args: WatchArgs) -> u8 {
    super::report_error(&"watch is not built yet")
}
