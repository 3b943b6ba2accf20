//! Console benchmarks: ingest (parse + aggregate JSONL events per second) and frame render time
//! at 160×45 with 1 million events retained (issue 7). The console lives on another branch;
//! its benches go here when it lands, so `cargo bench --bench micro console` selects them.
