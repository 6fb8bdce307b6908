//! `tailpdf-renderer`: the render backend's command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "tailpdf's render backend: HTML + Tailwind to PDF through Chromium")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render one document to a PDF without a server (arrives with issue #3).
    Render,
    /// Run the render service for the edge (arrives with issue #4).
    Serve,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (what, issue) = match cli.command {
        Command::Render => ("render", 3),
        Command::Serve => ("serve", 4),
    };
    anyhow::bail!("`tailpdf-renderer {what}` is not built yet (issue #{issue})")
}
