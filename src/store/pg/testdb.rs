//! Test databases: each test gets a fresh, empty PostgreSQL database, dropped when the test is
//! done. For the store's tests only (hence `#[doc(hidden)]`).
//!
//! The server is found once per process, in this order:
//! 1. `BOTGATE_TEST_POSTGRES`, when set: a URL to a database on a server where the role may
//!    create databases (e.g. `postgres://botgate@db.test:5432/postgres`); it must accept
//!    plaintext connections. It is used or the tests fail, never a silent fallback.
//! 2. A server on `127.0.0.1:5432` with trust auth, as role `root` and then as `postgres`.
//! 3. A private cluster: `initdb` and `pg_ctl` from `PATH` or else `/usr/lib/postgresql/*/bin`
//!    (highest version), in a temporary directory, on a free port, with fsync off. PostgreSQL
//!    will not run as root, so as root it runs as `postgres` (or `nobody`) through `runuser`.
//!    It is stopped and its directory removed when the test binary exits.
//!
//! `BOTGATE_TEST_POSTGRES_PRIVATE=1` skips 1 and 2 (for testing this harness).
//!
//! Without any of the three every [`TestDb::new`] panics, saying what to install or set.
//! Dropping needs `DROP DATABASE ... WITH (FORCE)`: PostgreSQL 13 or newer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::{Config, NoTls};

use super::render;

/// The server's admin URL, or why there is none; found once per process.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

/// The private cluster, when this process started one; stopped after exit by its watchdog.
static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The servers tried when `BOTGATE_TEST_POSTGRES` is not set.
const LOCAL_SERVERS: [&str; 2] = [
    "postgres://root@127.0.0.1:5432/postgres",
    "postgres://postgres@127.0.0.1:5432/postgres",
];

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh database for one test; dropped (`DROP DATABASE ... WITH (FORCE)`) when this is dropped.
pub struct TestDb {
    /// `postgres://USER@HOST:PORT/DBNAME`, for `tokio_postgres::Config`'s `parse`.
    pub url: String,
    name: String,
    server: &'static str,
}

// No `Default`: creating a database is a side effect that may panic, not a default value.
#[allow(clippy::new_without_default)]
impl TestDb {
    /// Create a fresh database on the test server. Panics with a clear message saying what to
    /// install or set when no server can be found or started (never a silent skip).
    pub fn new() -> TestDb {
        let server = server();
        let name = format!("botgate_t_{:016x}", rand::random::<u64>());
        if let Err(e) = execute_sql(server, &format!("CREATE DATABASE {name}")) {
            panic!("test database: CREATE DATABASE {name} failed: {e}");
        }
        TestDb {
            url: with_dbname(server, &name),
            name,
            server,
        }
    }

    /// The server's admin URL (the maintenance database), e.g. for a test that creates more
    /// databases.
    pub fn server_url() -> String {
        server().to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = execute_sql(self.server, &sql) {
            eprintln!("test database: {sql} failed: {e}");
        }
    }
}

/// The admin URL, finding the server on the first call; panics when there is none.
fn server() -> &'static str {
    match SERVER.get_or_init(find_server) {
        Ok(url) => url,
        Err(why) => panic!("{why}"),
    }
}

/// Find or start the server (see the module doc), returning its admin URL.
fn find_server() -> Result<String, String> {
    let private = std::env::var_os("BOTGATE_TEST_POSTGRES_PRIVATE").is_some_and(|v| v == "1");
    if !private && let Some(url) = std::env::var_os("BOTGATE_TEST_POSTGRES") {
        let url = url
            .into_string()
            .map_err(|_| "BOTGATE_TEST_POSTGRES is not UTF-8".to_string())?;
        execute_sql(&url, "SELECT 1")
            .map_err(|e| format!("BOTGATE_TEST_POSTGRES is set but does not connect: {e}"))?;
        return Ok(url);
    }
    let mut tried = Vec::new();
    if !private {
        for url in LOCAL_SERVERS {
            match execute_sql(url, "SELECT 1") {
                Ok(()) => return Ok(url.to_string()),
                Err(e) => tried.push(format!("{url}: {e}")),
            }
        }
    }
    let Some(bin) = find_bin() else {
        tried.push(
            "initdb and pg_ctl on PATH and under /usr/lib/postgresql/*/bin: not found".into(),
        );
        return Err(format!(
            "no PostgreSQL server for the tests; tried:\n  {}\n\
             install PostgreSQL (Debian: apt-get install postgresql) or set \
             BOTGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DB",
            tried.join("\n  ")
        ));
    };
    start_cluster(bin).map_err(|e| {
        format!(
            "no PostgreSQL server for the tests; tried:\n  {}\nand starting a private cluster \
             failed: {e}\nset BOTGATE_TEST_POSTGRES=postgres://USER@HOST:PORT/DB to use a server",
            tried.join("\n  ")
        )
    })
}

/// The first directory with both `initdb` and `pg_ctl`: `PATH`, then
/// `/usr/lib/postgresql/<major>/bin`, highest major first.
fn find_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    std::env::split_paths(&path)
        .chain(versioned.into_iter().map(|(_, bin)| bin))
        .find(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
}

/// A private cluster: its binaries, its directory (data, socket and log) and, when this process
/// is root, the user it runs as.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    user: Option<String>,
    port: u16,
    /// More server options (`-c name=value …`), e.g. TLS.
    extra_options: String,
}

impl Cluster {
    /// Start a watchdog shell that waits for this process to end, however it ends, then stops
    /// the cluster and removes its directory (a test binary has no exit hook that always runs).
    fn watch(&self) -> Result<(), String> {
        let dir = path_str(&self.dir)?;
        let pg_ctl = self.bin.join("pg_ctl");
        let pg_ctl = path_str(&pg_ctl)?;
        let as_user = match &self.user {
            Some(user) => format!("runuser -u '{user}' -- "),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{pg_ctl}' -D '{dir}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot start the private cluster's watchdog (sh): {e}"))
    }

    /// Run `program` (from the cluster's binaries) as the cluster's user; its output on failure.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        // The user may not be able to enter the current directory.
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{} {}: {}\n{}{}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Create and start a private cluster for the shared test server; its admin URL.
fn start_cluster(bin: PathBuf) -> Result<String, String> {
    let cluster = CLUSTER.get_or_init(|| Cluster::create(bin));
    let cluster = cluster.as_ref().map_err(Clone::clone)?;
    cluster.start()?;
    Ok(cluster.url())
}

impl Cluster {
    /// A new cluster directory with `initdb` run in it, watched (so it is stopped and removed
    /// after this process ends), on a free port; not started.
    fn create(bin: PathBuf) -> Result<Cluster, String> {
        let dir = std::env::temp_dir().join(format!(
            "botgate-pg-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let user = if rustix::process::geteuid().is_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|user| succeeds(Command::new("id").arg("-u").arg(user)))
                .ok_or("running as root, and there is neither a postgres nor a nobody user")?;
            if !succeeds(Command::new("chown").arg(user).arg(&dir)) {
                return Err(format!("cannot chown {} to {user}", dir.display()));
            }
            Some(user.to_string())
        } else {
            None
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("cannot pick a free port: {e}"))?
            .port();
        let cluster = Cluster {
            bin,
            dir,
            user,
            port,
            extra_options: String::new(),
        };
        // Watched before starting, so a server that started but did not answer is stopped too.
        cluster.watch()?;
        let dir = path_str(&cluster.dir)?;
        // C locale with UTF-8: the byte order of the SQLite store, whatever the environment says.
        cluster.run(
            "initdb",
            &[
                "-D",
                dir,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        Ok(cluster)
    }

    /// Start the server (again) on its port and wait until it answers.
    fn start(&self) -> Result<(), String> {
        let dir = path_str(&self.dir)?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{dir}' -c fsync=off {}",
            self.port, self.extra_options
        );
        let log = format!("{dir}/log");
        if let Err(e) = self.run(
            "pg_ctl",
            &["-D", dir, "-o", &options, "-w", "start", "-l", &log],
        ) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{log}"));
        }
        let url = self.url();
        execute_sql(&url, "SELECT 1").map_err(|e| format!("started, but {url}: {e}"))
    }

    /// Stop the server (`-m fast`: clients are disconnected, as when a database is restarted).
    fn stop(&self) -> Result<(), String> {
        let dir = path_str(&self.dir)?;
        self.run("pg_ctl", &["-D", dir, "-m", "fast", "-w", "stop"])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// A PostgreSQL server of a test's own (a private cluster), for tests that stop and restart
/// the server under running gates. Needs the server binaries (`initdb`, `pg_ctl`); panics
/// saying what to install when they are missing. Stopped and removed when dropped (and by its
/// watchdog when the test process dies first).
pub struct PrivateServer {
    cluster: Cluster,
}

// No `Default`: starting a server is a side effect that may panic, not a default value.
#[allow(clippy::new_without_default)]
impl PrivateServer {
    /// Create and start the cluster.
    pub fn start() -> PrivateServer {
        Self::start_with(|_| Ok(()))
    }

    /// A cluster with TLS on (`cert_pem` and `key_pem` as its server certificate and key) where
    /// the role `botgate` may connect over TCP only with TLS (`hostssl`); the admin role
    /// (`postgres`, [`Self::admin_url`]) connects without. The role is created, with CREATEDB.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PrivateServer {
        let server = Self::start_with(|cluster| {
            let dir = path_str(&cluster.dir)?;
            let write = |name: &str, text: &str, mode: u32| -> Result<(), String> {
                use std::os::unix::fs::PermissionsExt;
                let path = cluster.dir.join(name);
                std::fs::write(&path, text)
                    .and_then(|()| {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    })
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                match &cluster.user {
                    Some(user) if !succeeds(Command::new("chown").arg(user).arg(&path)) => {
                        Err(format!("cannot chown {} to {user}", path.display()))
                    }
                    _ => Ok(()),
                }
            };
            write("server.crt", cert_pem, 0o644)?;
            write("server.key", key_pem, 0o600)?;
            write(
                "pg_hba.conf",
                "local all all trust\n\
                 hostssl all botgate 127.0.0.1/32 trust\n\
                 host all postgres 127.0.0.1/32 trust\n",
                0o600,
            )?;
            cluster.extra_options = format!(
                "-c ssl=on -c ssl_cert_file='{dir}/server.crt' -c ssl_key_file='{dir}/server.key'"
            );
            Ok(())
        });
        if let Err(e) = execute_sql(&server.admin_url(), "CREATE ROLE botgate LOGIN CREATEDB") {
            panic!("private server: CREATE ROLE botgate failed: {e}");
        }
        server
    }

    /// The admin role's URL (`postgres`, the maintenance database).
    pub fn admin_url(&self) -> String {
        self.cluster.url()
    }

    /// Create the cluster, let `setup` change it before the first start, start it.
    fn start_with(setup: impl FnOnce(&mut Cluster) -> Result<(), String>) -> PrivateServer {
        let Some(bin) = find_bin() else {
            panic!(
                "this test starts its own PostgreSQL server and needs initdb and pg_ctl (on PATH \
                 or under /usr/lib/postgresql/*/bin); install PostgreSQL (Debian: apt-get install \
                 postgresql)"
            );
        };
        let cluster = Cluster::create(bin)
            .and_then(|mut cluster| setup(&mut cluster).map(|()| cluster))
            .and_then(|cluster| cluster.start().map(|()| cluster))
            .unwrap_or_else(|e| panic!("starting a private PostgreSQL server failed: {e}"));
        PrivateServer { cluster }
    }

    /// A URL for a fresh database on this server (created now).
    pub fn database(&self, name: &str) -> String {
        let url = self.cluster.url();
        if let Err(e) = execute_sql(&url, &format!("CREATE DATABASE {name}")) {
            panic!("private server: CREATE DATABASE {name} failed: {e}");
        }
        with_dbname(&url, name)
    }

    /// Stop the server; panics when it does not stop.
    pub fn stop(&self) {
        if let Err(e) = self.cluster.stop() {
            panic!("private server: stopping failed: {e}");
        }
    }

    /// Start the stopped server again on the same port; panics when it does not answer.
    pub fn restart(&self) {
        if let Err(e) = self.cluster.start() {
            panic!("private server: starting again failed: {e}");
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Ok(dir) = path_str(&self.cluster.dir)
            && self.cluster.dir.join("postmaster.pid").exists()
        {
            let _ = self
                .cluster
                .run("pg_ctl", &["-D", dir, "-m", "immediate", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
    }
}

/// Whether `command` runs and exits 0 (its output discarded).
fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|output| output.status.success())
}

/// `path` as UTF-8, for command lines.
fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// `url` with its database replaced by `name` (user, password, host, port and query kept).
fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..path]),
        None => format!("{}/{name}", &base[..path]),
    }
}

/// Run `sql` on the database at `url` (the simple query protocol: one statement runs on its
/// own, so `CREATE DATABASE` works; several run as one implicit transaction), on a thread of
/// its own with its own runtime, so it works inside and outside a tokio runtime.
pub fn execute_sql(url: &str, sql: &str) -> Result<(), String> {
    let work = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
        runtime.block_on(async {
            let mut config: Config = url.parse().map_err(|e| format!("bad URL: {e}"))?;
            config.connect_timeout(CONNECT_TIMEOUT);
            let (client, connection) = config.connect(NoTls).await.map_err(|e| render(&e))?;
            let connection = tokio::spawn(connection);
            let result = client.batch_execute(sql).await.map_err(|e| render(&e));
            // Close the session before returning, so it never holds the database.
            drop(client);
            let _ = connection.await;
            result
        })
    };
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|_| Err("the worker thread panicked".into()))
    })
}
