//! `botgate scan PATH... [--git] [--json]`: find leaked botgate secrets and hard-coded
//! `CF-Access-Client-Secret` values; exit 1 if any (so it can gate a commit or a CI job).

use anyhow::Result;

use crate::cli::ScanArgs;
use crate::exit::Failure;
use crate::scan::{self, ScanError};

pub fn run(args: ScanArgs) -> Result<()> {
    let mut report = scan::scan_paths(&args.paths).map_err(to_failure)?;
    if args.git {
        for path in &args.paths {
            report.merge(scan::git::scan_history(path).map_err(to_failure)?);
        }
    }
    for u in &report.unreadable {
        eprintln!("warning: cannot read {}: {}", u.path.display(), u.error);
    }
    if args.json.json {
        super::print_json(&report)?;
    } else {
        for f in &report.findings {
            println!("{f}");
        }
    }
    match report.findings.len() {
        0 => Ok(()),
        n => Err(Failure::refused(format!(
            "{n} leaked secret{} found in {} scanned files: revoke and rotate {}, then remove {} (from history too)",
            if n == 1 { "" } else { "s" },
            report.files_scanned,
            if n == 1 { "it" } else { "them" },
            if n == 1 { "it" } else { "them" },
        ))),
    }
}

fn to_failure(e: ScanError) -> anyhow::Error {
    match e {
        ScanError::GitSpawn { .. } => Failure::refused(e.to_string()),
        ScanError::Path { .. } | ScanError::Git { .. } => Failure::bad_input(e.to_string()),
    }
}
