//! The `vp` binary: parses arguments, dispatches to one command, and is the
//! only place that prints a top-level error and chooses the exit code.

mod args;
mod bridge;
mod cache;
mod error;
mod graph;
mod report;
mod run;
mod trace;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match cli.command {
        args::Command::Run(args) => run::command::run(args),
        args::Command::Build(args) => run::build::build(args),
        args::Command::Trace(args) => trace::command::run(args),
        args::Command::Cache(args) => cache::command::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            error::print(&err);
            ExitCode::from(error::exit_code(&err))
        }
    }
}
