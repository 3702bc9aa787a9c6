//! A private `redis-server` for one test, on a free 127.0.0.1 port, with no
//! persistence. Dropping it stops the server.

#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many ports to try before giving up (another process may take the one picked).
const ATTEMPTS: usize = 5;
/// How long one server may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server` child process.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server, or panics saying why not.
    pub fn start() -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let child = spawn(port, dir.path());
            let mut server = RedisServer {
                port,
                child: Some(child),
                _dir: dir,
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
            // Dropping `server` stops this attempt's process before the next port.
        }
        panic!("redis-server did not start after {ATTEMPTS} attempts: {last_error}");
    }

    /// The URL to connect to, like `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server at once, to simulate losing Redis.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts an empty server again on the same port (after `kill`), to
    /// simulate Redis coming back. Panics if the port was taken meanwhile.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(self.port, self._dir.path()));
        if let Err(e) = self.wait_until_ready() {
            panic!("redis-server did not restart: {e}");
        }
    }

    /// Waits until this very process answers on the port: another server that
    /// took the port first would answer PING too, so its process id is checked.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err("killed".to_owned());
            };
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited: {status}",
                    self.port
                ));
            }
            let pid = child.id();
            let answer = client
                .get_connection_with_timeout(Duration::from_millis(500))
                .and_then(|mut conn| {
                    let _: String = redis::cmd("PING").query(&mut conn)?;
                    redis::cmd("INFO").arg("server").query::<String>(&mut conn)
                });
            match answer {
                Ok(info)
                    if info
                        .lines()
                        .any(|l| l.trim() == format!("process_id:{pid}")) =>
                {
                    return Ok(());
                }
                Ok(_) => return Err(format!("port {} is held by another redis", self.port)),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("no answer on port {}: {e}", self.port));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `redis-server` on `port` with no persistence, keeping its files in `dir`.
fn spawn(port: u16, dir: &Path) -> Child {
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`redis-server` is not installed: install the Debian package `redis-server` \
             (scripts/test.sh installs it)"
        ),
        Err(e) => panic!("could not start redis-server: {e}"),
    }
}

/// A port nothing listens on right now (it may be taken again before use).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
