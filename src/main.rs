//! The `abreport` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code. Everything else lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = abreport::cli::Cli::parse();
    let service = matches!(cli.command, abreport::cli::Command::Serve(_));
    abreport::app::init_logging(cli.log_format, service);
    let exit = abreport::app::main(cli);
    std::process::ExitCode::from(exit as u8)
}
