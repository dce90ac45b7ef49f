//! The `rapport` binary.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    rapport::cli::run(rapport::cli::Cli::parse())
}
