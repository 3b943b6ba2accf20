//! Seed a state dir with many real service tokens for `bench/run`, fast.
//!
//! Creating 1,000 (or 100,000) tokens through `botgate token create` costs one process start
//! each; this goes through the same library call (`Store::create_token`), with secrets generated
//! and hashed exactly as the CLI does, and prints one `client_id secret name` line per token on
//! stdout for the nginx `map` and the wrk scripts. Benchmark use only: it prints secrets.
//!
//! Usage: `bench_seed STATE_DIR COUNT [NAME_PREFIX]`

use std::io::Write;

use anyhow::{Context, Result, bail};
use botgate::credential::{ClientId, ClientSecret};
use botgate::store::{NewToken, Store};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, count, prefix) = match args.as_slice() {
        [dir, count] => (dir, count, "bench-client"),
        [dir, count, prefix] => (dir, count, prefix.as_str()),
        _ => bail!("usage: bench_seed STATE_DIR COUNT [NAME_PREFIX]"),
    };
    let count: usize = count
        .parse()
        .with_context(|| format!("COUNT must be a number, got {count:?}"))?;
    let store = Store::open(std::path::Path::new(dir))
        .with_context(|| format!("cannot open the store in {dir}"))?;
    let now = chrono::Utc::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for i in 0..count {
        let name = format!("{prefix}-{i:06}-bench");
        let id = ClientId::generate();
        let secret = ClientSecret::generate();
        botgate::store::wait(store.create_token(&NewToken {
            name: &name,
            client_id: &id,
            secret_hash: secret.hash(),
            created_at: now,
            expires_at: now + chrono::Duration::days(30),
            bounds: Default::default(),
        }))
        .with_context(|| format!("cannot create token {name}"))?;
        writeln!(out, "{} {} {name}", id.as_str(), secret.expose())?;
    }
    out.flush()?;
    Ok(())
}
