//! The `ss2d` binary: parses the command line and reports failures as one line on stderr.
//!
//! Exit status: 0 on success, 1 on any error (`ss2d: error: ...`). Help and version go to
//! stdout with status 0.
#![deny(unsafe_code)]

mod gate;

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use ss2d_cli::cli::Cli;

fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn fail(msg: &str) -> ExitCode {
    // If stderr is gone there is nobody left to tell.
    let _ = writeln!(std::io::stderr().lock(), "ss2d: error: {}", one_line(msg));
    ExitCode::from(1)
}

fn main() -> ExitCode {
    // A bug must still end as one line and status 1, never a multi-line panic report.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr().lock(),
            "ss2d: error: internal error (please report): {}",
            one_line(&info.to_string())
        );
        std::process::exit(1);
    }));

    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = write!(std::io::stdout().lock(), "{e}");
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    fail("no command given (commands: scan, cross-scan, cross-merge, layer, demo, bench; see `ss2d --help`)")
                }
                _ => {
                    // clap writes `error: <what>` (possibly over several lines, e.g. the
                    // list of missing arguments), then tips and usage: keep the `<what>`.
                    let text = e.to_string();
                    let what: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .take_while(|l| {
                            !(l.starts_with("Usage:")
                                || l.starts_with("tip:")
                                || l.starts_with("For more information"))
                        })
                        .filter(|l| !l.is_empty())
                        .collect();
                    let what = what.join(" ");
                    let what = what.strip_prefix("error: ").unwrap_or(&what);
                    fail(&format!("{what} (see `ss2d --help`)"))
                }
            };
        }
    };

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match ss2d_cli::run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our report went away (`ss2d bench | head`): not an error of ours.
        Err(ss2d_cli::Error::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}
