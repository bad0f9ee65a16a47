//! A private PostgreSQL cluster with TLS, and the test CA that signs its certificate, for the
//! `verify-ca`/`verify-full` tests (initdb/pg_ctl and the `openssl` command, as the demo drives them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use deskgraph::demo::cluster::{as_owner, find_bin_dir, running_as_root};
use uuid::Uuid;

pub const SCRAM_USER: &str = "tls_scram_user";
pub const SCRAM_PASSWORD: &str = "scram-over-tls";
pub const CERT_USER: &str = "tls_cert_user";

/// A directory removed when the test ends.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "deskgraph-tls-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA, a server certificate it signs for `localhost` and `127.0.0.1`, and a client
/// certificate for [`CERT_USER`], made with the `openssl` command.
pub struct Pki {
    pub ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn create(dir: &Path) -> Self {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str| dir.join(name);
        std::fs::write(
            file("ca.cnf"),
            "[req]\ndistinguished_name = dn\nx509_extensions = ca\nprompt = no\n\
             [dn]\nCN = deskgraph test CA\n\
             [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-config",
            &path(&file("ca.cnf")),
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &path(&file("ca.key")),
            "-out",
            &path(&file("ca.crt")),
            "-days",
            "2",
        ]);
        let leaf = |name: &str, subject: &str, extensions: &str| {
            std::fs::write(file(&format!("{name}.ext")), extensions).unwrap();
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &path(&file(&format!("{name}.key"))),
                "-out",
                &path(&file(&format!("{name}.csr"))),
                "-subj",
                subject,
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &path(&file(&format!("{name}.csr"))),
                "-CA",
                &path(&file("ca.crt")),
                "-CAkey",
                &path(&file("ca.key")),
                "-CAcreateserial",
                "-out",
                &path(&file(&format!("{name}.crt"))),
                "-days",
                "2",
                "-extfile",
                &path(&file(&format!("{name}.ext"))),
            ]);
        };
        leaf(
            "server",
            "/CN=localhost",
            "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
        );
        leaf(
            "client",
            &format!("/CN={CERT_USER}"),
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = clientAuth\n",
        );
        Self {
            ca_cert: file("ca.crt"),
            server_cert: file("server.crt"),
            server_key: file("server.key"),
            client_cert: file("client.crt"),
            client_key: file("client.key"),
        }
    }
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command makes the test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster of this test on a free port, with TLS when given a [`Pki`] (then
/// [`SCRAM_USER`] must log in with SCRAM over TLS and [`CERT_USER`] with a client certificate);
/// stopped when the value drops.
pub struct Cluster {
    pub port: u16,
    data: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// `None` (after saying why) when the PostgreSQL server binaries are not installed.
    pub fn start(dir: &Path, pki: Option<&Pki>) -> Option<Self> {
        let Some(bin) = find_bin_dir() else {
            crate::common::skip_visibly(
                "tls (private cluster)",
                "no PostgreSQL server binaries (initdb, pg_ctl) are installed",
            );
            return None;
        };
        let as_postgres = running_as_root();
        let data = dir.join("data");
        let port = free_port();
        // initdb refuses to run as root: the cluster then belongs to the `postgres` user.
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(dir));
        }
        run(as_owner(&bin.join("initdb"), as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]));
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nshared_buffers = 16MB\nmax_connections = 40\n",
            data.display()
        );
        let mut hba = String::from("local all all trust\n");
        match pki {
            Some(pki) => {
                for (from, to) in [
                    (&pki.server_cert, "server.crt"),
                    (&pki.server_key, "server.key"),
                    (&pki.ca_cert, "ca.crt"),
                ] {
                    std::fs::copy(from, data.join(to)).unwrap();
                    if as_postgres {
                        run(Command::new("chown")
                            .arg("postgres:postgres")
                            .arg(data.join(to)));
                    }
                }
                run(Command::new("chmod")
                    .arg("0600")
                    .arg(data.join("server.key")));
                conf += "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                         ssl_ca_file = 'ca.crt'\n";
                hba += &format!(
                    "hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
                     hostssl all {CERT_USER} 127.0.0.1/32 cert\n"
                );
            }
            None => conf += "ssl = off\n",
        }
        hba += "host all all 127.0.0.1/32 trust\n";
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        run(as_owner(&bin.join("pg_ctl"), as_postgres)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "start"]));
        let cluster = Self {
            port,
            data,
            pg_ctl: bin.join("pg_ctl"),
            as_postgres,
        };
        if pki.is_some() {
            cluster.create_roles();
        }
        Some(cluster)
    }

    fn create_roles(&self) {
        let mut psql = as_owner(&self.pg_ctl.with_file_name("psql"), self.as_postgres);
        psql.args(["-h"])
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "create role {SCRAM_USER} login password '{SCRAM_PASSWORD}'; \
                 create role {CERT_USER} login"
            ));
        run(&mut psql);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_owner(&self.pg_ctl, self.as_postgres)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn append(file: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
