//! `secutix-sync validate-config`: every problem of the configuration at once, with valid values.

use super::*;

pub(crate) fn validate_config_command(sources: &Sources) -> ExitCode {
    let report = match Config::report(sources) {
        Ok(r) => r,
        Err(e) => {
            println!("problem: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", validation_text(&report));
    let problems = report.problems.len() + report.credentials.len() + report.unknown_keys.len();
    ExitCode::from(if problems == 0 { 0 } else { 2 })
}
