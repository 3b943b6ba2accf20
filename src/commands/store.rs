//! `botgate store copy --to URL`: move the embedded store into PostgreSQL without re-issuing
//! a credential.

use anyhow::Result;
use serde::Serialize;

use super::{print_json, print_table};
use crate::cli::StoreCommand;
use crate::exit::Failure;
use crate::paths::Paths;
use crate::store::{STORE_FILE, Store, StoreError};

#[derive(Debug, Serialize)]
struct Copied {
    from: String,
    to: String,
    tables: Vec<TableCount>,
}

#[derive(Debug, Serialize)]
struct TableCount {
    table: String,
    rows: usize,
}

pub fn run(paths: &Paths, cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Copy { to, json } => copy(paths, &to, json.json),
    }
}

fn copy(paths: &Paths, to: &str, json: bool) -> Result<()> {
    let file = paths.state_dir.join(STORE_FILE);
    if !file.exists() {
        return Err(Failure::refused(format!(
            "no SQLite store at {} to copy (pass the state dir that holds it with --state-dir)",
            file.display()
        )));
    }
    let url = crate::config::resolve_store_url(to).map_err(Failure::bad_input)?;
    crate::store::StoreLocation::check_url(&url).map_err(Failure::bad_input)?;
    let source = Store::open(&paths.state_dir)?;
    let target = Store::connect(&url).map_err(refused)?;
    let tables = crate::store::wait(source.export_tables())?;
    crate::store::wait(target.import_tables(&tables)).map_err(refused)?;
    let report = Copied {
        from: source.describe(),
        to: target.describe(),
        tables: tables
            .iter()
            .filter(|t| t.table != "meta")
            .map(|t| TableCount {
                table: t.table.clone(),
                rows: t.rows.len(),
            })
            .collect(),
    };
    if json {
        return print_json(&report);
    }
    println!("copied {} into {}", report.from, report.to);
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| vec![t.table.clone(), t.rows.to_string()])
        .collect();
    print_table(&["table", "rows"], &rows)?;
    println!(
        "next: point every gate and the CLI at it with [store] url = \"{}\" (or BOTGATE_STORE_URL)",
        crate::store::redact_url(to)
    );
    Ok(())
}

fn refused(e: StoreError) -> anyhow::Error {
    Failure::refused(e.to_string())
}
