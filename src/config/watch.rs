//! Hot reload of the policy file. The parent directory is watched (editors and `edit::apply`
//! replace the file by renaming a new one over it, which a watch on the file itself would
//! miss), events are debounced (~200 ms), other files in the directory are ignored, and each
//! change is loaded and validated and sent on a tokio channel as `Reload::Loaded` or
//! `Reload::Rejected`. The consumer keeps its last good config when a reload is rejected.
//!
//! notify has no tokio integration: its callback runs on the debouncer's own thread and
//! bridges into the async world with `blocking_send`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{Event, EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::finding::ConfigError;
use super::load::{LoadedConfig, parse};

/// How long the file must be quiet before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The outcome of one reload.
// One message per file change: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Reload {
    /// The new file is valid; switch to it.
    Loaded(LoadedConfig),
    /// The new file is missing or invalid; keep the last good config and report this.
    Rejected(ConfigError),
}

/// Keeps the watch alive; dropping it stops watching.
pub struct WatchHandle {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchHandle")
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{} has no file name to watch", path.display())]
    NoFileName { path: PathBuf },
    #[error("cannot watch {} for changes to the policy file: {source}", dir.display())]
    Watch {
        dir: PathBuf,
        source: notify_debouncer_full::notify::Error,
    },
}

/// Watch `path` and send a `Reload` on `tx` after each change to its content. A change that
/// leaves the content as it was (e.g. `touch`) sends nothing.
pub fn watch(path: PathBuf, tx: mpsc::Sender<Reload>) -> Result<WatchHandle, WatchError> {
    let name = path
        .file_name()
        .ok_or_else(|| WatchError::NoFileName { path: path.clone() })?
        .to_os_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut seen = Seen::read(&path);
    let handler = move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events.iter().any(|e| touches(&e.event, &name))
                && let Some(reload) = seen.reload(&path)
            {
                // A closed channel means the consumer is gone; nothing left to tell.
                let _ = tx.blocking_send(reload);
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "policy file watch error");
            }
        }
    };
    let watch_err = |source| WatchError::Watch {
        dir: dir.clone(),
        source,
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, handler).map_err(watch_err)?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    Ok(WatchHandle {
        _debouncer: debouncer,
    })
}

/// Whether `event` may have changed the file called `name` (reads are ignored).
fn touches(event: &Event, name: &OsStr) -> bool {
    !matches!(event.kind, EventKind::Access(_))
        && event.paths.iter().any(|p| p.file_name() == Some(name))
}

/// What the file held at the last look, so unchanged content is not reloaded.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    Unreadable,
    Text(String),
}

impl Seen {
    fn read(path: &Path) -> Self {
        match crate::input::read_to_string(path, crate::input::POLICY_FILE) {
            Ok(t) => Seen::Text(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Missing,
            Err(_) => Seen::Unreadable,
        }
    }

    /// Load the file if it differs from what was seen last.
    fn reload(&mut self, path: &Path) -> Option<Reload> {
        let now = Seen::read(path);
        if now == *self && now != Seen::Unreadable {
            return None;
        }
        let reload = match &now {
            Seen::Text(text) => match parse(path, text) {
                Ok(cfg) => Reload::Loaded(cfg),
                Err(e) => Reload::Rejected(e),
            },
            Seen::Missing => Reload::Rejected(ConfigError::NotFound {
                path: path.to_path_buf(),
            }),
            Seen::Unreadable => match crate::input::read_to_string(path, crate::input::POLICY_FILE)
            {
                Err(source) => Reload::Rejected(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }),
                // It became readable in between: load it next time round.
                Ok(_) => return None,
            },
        };
        *self = now;
        Some(reload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[[app]]\nname = \"api\"\nhostnames = [\"api.example.com\"]\nupstream = \"http://127.0.0.1:9000\"\n\n[[app.policy]]\nname = \"P1\"\naction = \"block\"\ninclude = [{ everyone = true }]\n";

    /// The next reload, or a failure after a generous deadline (file events can be slow on CI).
    async fn next(rx: &mut mpsc::Receiver<Reload>) -> Reload {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no reload within 10 s")
            .expect("watcher stopped")
    }

    /// Replace `path` the way editors do: write a sibling, rename it over.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("toml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[tokio::test]
    async fn reloads_good_edits_and_rejects_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, GOOD).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let _handle = watch(path.clone(), tx).unwrap();

        replace(&path, &GOOD.replace("P1", "P2"));
        match next(&mut rx).await {
            Reload::Loaded(cfg) => assert_eq!(cfg.file.app[0].policy[0].name.get_ref(), "P2"),
            Reload::Rejected(e) => panic!("rejected a good file: {e}"),
        }

        std::fs::write(&path, GOOD.replace("\"block\"", "\"blokc\"")).unwrap();
        match next(&mut rx).await {
            Reload::Rejected(e) => {
                assert_eq!(e.error_count(), 1);
                assert!(
                    e.findings()[0].message.contains("unknown variant `blokc`"),
                    "{e}"
                );
            }
            Reload::Loaded(_) => panic!("loaded a broken file"),
        }

        // An unrelated file in the same directory, then a real change.
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        replace(&path, &GOOD.replace("P1", "P3"));
        match next(&mut rx).await {
            Reload::Loaded(cfg) => assert_eq!(cfg.file.app[0].policy[0].name.get_ref(), "P3"),
            Reload::Rejected(e) => panic!("{e}"),
        }

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            next(&mut rx).await,
            Reload::Rejected(ConfigError::NotFound { .. })
        ));
    }

    #[test]
    fn only_events_on_the_policy_file_count() {
        use notify_debouncer_full::notify::event::{
            AccessKind, CreateKind, ModifyKind, RenameMode,
        };
        let name = OsStr::new("policy.toml");
        let ev = |kind, p: &str| Event::new(kind).add_path(PathBuf::from(p));
        assert!(touches(
            &ev(
                EventKind::Modify(ModifyKind::Any),
                "/etc/botgate/policy.toml"
            ),
            name
        ));
        assert!(touches(
            &ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/etc/botgate/policy.toml"
            ),
            name
        ));
        assert!(touches(
            &ev(EventKind::Create(CreateKind::File), "policy.toml"),
            name
        ));
        assert!(!touches(
            &ev(
                EventKind::Modify(ModifyKind::Any),
                "/etc/botgate/policy.toml.swp"
            ),
            name
        ));
        assert!(!touches(
            &ev(EventKind::Modify(ModifyKind::Any), "/etc/botgate/notes.txt"),
            name
        ));
        assert!(!touches(
            &ev(
                EventKind::Access(AccessKind::Any),
                "/etc/botgate/policy.toml"
            ),
            name
        ));
    }

    #[test]
    fn unchanged_content_is_not_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, GOOD).unwrap();
        let mut seen = Seen::read(&path);
        assert!(seen.reload(&path).is_none());
        std::fs::write(&path, GOOD.replace("P1", "P2")).unwrap();
        assert!(matches!(seen.reload(&path), Some(Reload::Loaded(_))));
        assert!(seen.reload(&path).is_none());
    }
}
