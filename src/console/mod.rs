//! The ops console: a ratatui app over one `AppState` changed only by the pure
//! `update(&mut AppState, Msg)`, drawn by views that only read it. Events arrive as `Msg`s on a
//! channel: from the in-process bus (`feed::spawn_bus_bridge`) or a tailed JSONL log
//! (`feed::spawn_tail`); inventory and policy snapshots come from `feed::spawn_inventory`.
//! `run` owns the terminal. Rotation actions (`wizard` keys) are queued by `update` and performed
//! by `actions::spawn_worker`. Keys, mouse clicks (hit-tested with `views::layout`, the layout
//! the views draw with) and `:` commands (`command`) all end in the same `AppState` paths.
//! Nothing here does blocking I/O on the UI task.

pub mod actions;
pub mod aggregate;
pub mod alerts;
pub mod app;
pub mod bench;
pub mod clipboard;
pub mod command;
pub mod compact;
pub mod export;
pub mod feed;
pub mod filter;
pub mod history;
pub mod inventory;
pub mod issuer_feed;
pub mod keymap;
pub mod latency;
pub mod model;
mod navigate;
pub mod rebind;
pub mod request_latency;
pub mod rows;
mod runner;
mod saved;
pub mod settings;
pub mod theme;
pub mod views;
pub mod window;
pub mod wizard;

pub use actions::{ActionContext, ConsoleAction};
pub use aggregate::Limits;
pub use app::{AppState, Effect, HeaderInfo, Msg, ViewId, update};
pub use model::{AppRow, CertRow, CredentialStatus, PolicyRow, RotationRow, TokenRow};
pub use runner::{ConsoleError, ConsoleOptions, run};
pub use theme::Theme;
