//! A real `redis-server` (Debian's package) per test: 127.0.0.1 and a free port, no
//! persistence, optionally a password; the listener is checked to be this child (its pid in
//! `INFO server`), and the server is killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::start_on_free_port;

/// A `redis-server` on 127.0.0.1 and a free port, killed on drop.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    pub password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free port (see [`start_on_free_port`]), with `password` required
    /// when given.
    pub fn start(password: Option<&str>) -> Self {
        let spawn = |port: u16| Self::spawn(port, password);
        // The server that answers must report this child's pid.
        let ours = |child: &Child, port: u16| {
            let s = Self::url_of(port, password);
            let info: Option<String> = ::redis::Client::open(s.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut con| ::redis::cmd("INFO").arg("server").query(&mut con))
                .ok();
            info.is_some_and(|i| i.lines().any(|l| l.trim() == format!("process_id:{}", child.id())))
        };
        let (child, port) = start_on_free_port("redis-server", Duration::from_secs(10), spawn, ours);
        Self { child, port, password: password.map(str::to_string) }
    }

    /// Starts a server on `port`, which the test holds: the port of a server it stopped, to
    /// bring up an empty one where the job's was. No retry and no check that the listener is
    /// this child; the server has 200 ms to start.
    pub fn start_on(port: u16) -> Self {
        let child = Self::spawn(port, None);
        std::thread::sleep(Duration::from_millis(200));
        Self { child, port, password: None }
    }

    fn spawn(port: u16, password: Option<&str>) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server; .ci/test.sh does it)")
    }

    fn url_of(port: u16, password: Option<&str>) -> String {
        match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        }
    }

    pub fn url(&self) -> String {
        Self::url_of(self.port, self.password.as_deref())
    }

    /// The URL of logical database `db` (so that concurrent jobs or workers stay apart).
    pub fn url_db(&self, db: u32) -> String {
        format!("{}/{db}", self.url())
    }

    /// `redis-cli` against this server; its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            cmd.args(["-a", p, "--no-auth-warning"]);
        }
        let o = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn con(&self) -> ::redis::Connection {
        ::redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
