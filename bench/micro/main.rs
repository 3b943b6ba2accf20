//! Micro-benchmarks (`cargo bench --bench micro`), with divan. Each module is one hot-path
//! piece of the gate; `console` is reserved for the console's ingest and render benches.
//!
//! The global allocator counts allocations, so every figure also says how many allocations one
//! call makes (the "alloc" rows in divan's output): the allowed-request decision must make none.

mod audit;
mod bounds;
mod console;
mod oidc;
mod policy;
mod token;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    if console::rss_probe() {
        return;
    }
    divan::main();
}
