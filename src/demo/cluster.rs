//! A private PostgreSQL cluster for `demo`, used only when nothing listens at the default
//! DATABASE_ADMIN_URL and the PostgreSQL server binaries are installed (see [`super::database`]). initdb/pg_ctl are driven as processes because
//! no crate manages a system PostgreSQL installation for us (embedded-postgres crates download
//! binaries, which a machine without internet cannot do).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Port of the private cluster (chosen to stay clear of a system PostgreSQL on 5432).
const PRIVATE_PORT: u16 = 54329;

pub struct PrivateCluster {
    pub data_dir: PathBuf,
    /// The owner connection (`postgres`, trusted on 127.0.0.1) to the demo's database.
    pub admin_url: String,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

impl PrivateCluster {
    /// Stops the cluster (fast shutdown); the data stays for the next demo.
    pub fn stop(&self) {
        let mut stop = as_owner(&self.pg_ctl, self.as_postgres);
        stop.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"]);
        if let Err(err) = run(&mut stop, "pg_ctl stop") {
            tracing::warn!(error = %err, "could not stop the private PostgreSQL cluster");
        }
    }
}

/// Starts the private cluster in `demo_dir/pgdata` (creating it on first use). The caller has found
/// that nothing listens at the default DATABASE_ADMIN_URL.
pub fn start(demo_dir: &Path) -> anyhow::Result<PrivateCluster> {
    let bin = find_bin_dir().context(
        "no PostgreSQL server binaries were found to start a private cluster with; install \
         PostgreSQL (e.g. `apt-get install postgresql`) or set DATABASE_ADMIN_URL",
    )?;
    let data_dir = demo_dir.join("pgdata");
    let as_postgres = running_as_root();
    if !data_dir.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&data_dir)?;
        if as_postgres {
            // initdb refuses to run as root; the cluster belongs to the `postgres` system user.
            run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(demo_dir),
                "chown",
            )?;
        }
        let mut initdb = as_owner(&bin.join("initdb"), as_postgres);
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        run(&mut initdb, "initdb")?;
    }
    let log = demo_dir.join("postgres.log");
    let mut start = as_owner(&bin.join("pg_ctl"), as_postgres);
    start
        .arg("-D")
        .arg(&data_dir)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(format!(
            "-p {PRIVATE_PORT} -c listen_addresses=127.0.0.1 -k {}",
            data_dir.display()
        ))
        .args(["-w", "start"]);
    // Already running from an earlier demo is fine.
    let _ = start.output();
    Ok(PrivateCluster {
        pg_ctl: bin.join("pg_ctl"),
        as_postgres,
        data_dir,
        admin_url: format!("postgres://postgres@127.0.0.1:{PRIVATE_PORT}/deskgraph"),
    })
}

/// Whether this process runs as root (initdb and PgBouncer refuse to; they run as `postgres`).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program`, run as the `postgres` system user when `as_postgres` (the owner of a cluster made
/// while running as root).
pub fn as_owner(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian layout), or a `pg_ctl` on PATH.
pub fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        let out = Command::new("sh")
            .args(["-c", "command -v pg_ctl"])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        path.parent().map(Path::to_path_buf)
    })
}
