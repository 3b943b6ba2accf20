//! `botgate doctor`: run the pre-flight checks (`crate::doctor`) and print one line each.

use anyhow::Result;

use crate::doctor::{Check, Status};
use crate::exit::Failure;
use crate::paths::Paths;

pub fn run(paths: &Paths, json: bool) -> Result<()> {
    let checks = crate::doctor::run(paths, chrono::Utc::now());
    if json {
        super::print_json(&checks)?;
    } else {
        print(&checks)?;
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        return Err(Failure::refused(format!(
            "{failed} check(s) failed; fix them before going live"
        )));
    }
    Ok(())
}

fn print(checks: &[Check]) -> Result<()> {
    use std::io::Write;
    let width = checks
        .iter()
        .map(|c| c.check.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for c in checks {
        writeln!(
            out,
            "{:<4}  {:<width$}  {}",
            c.status.as_str(),
            c.check,
            c.detail
        )?;
        if let Some(fix) = &c.fix {
            writeln!(out, "{:<4}  {:<width$}  → {fix}", "", "")?;
        }
    }
    Ok(())
}
