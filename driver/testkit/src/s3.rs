//! A real S3-compatible server (`s3s-fs`) per test: 127.0.0.1 and a free port, one bucket
//! ([`BUCKET`]) in a temporary directory, fixed test credentials, killed on drop; with a
//! client for the test itself and `ifp` runs (and Lambda emulators) pointed at it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Once};
use std::time::Duration;

use ifp_host::data::object::{S3Store, S3Url};

use crate::bins::ifp_bin;
use crate::json::load_json;
use crate::lambda::Emulator;
use crate::ports::start_on_free_port;

pub const KEY: &str = "ifp-test-key";
pub const SECRET: &str = "ifp-test-secret";
pub const BUCKET: &str = "data";

/// Credentials for this process's own client (the `ifp` child processes get theirs from
/// [`S3Server::ifp`]). Every test sets the same values, once, before any client exists.
pub fn test_credentials() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", KEY);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
        // Small parts, so that the fixtures are read through many concurrent GETs.
        std::env::set_var("IFP_S3_PART_BYTES", "4096");
    });
}

/// An `s3s-fs` server with one bucket, on its own port and directory.
pub struct S3Server {
    child: Child,
    _root: tempfile::TempDir,
    pub endpoint: String,
    pub store: Arc<S3Store>,
}

impl S3Server {
    pub fn start() -> Self {
        test_credentials();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let spawn = |port: u16| {
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", KEY, "--secret-key", SECRET])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("s3s-fs is not installed (.ci/test.sh installs it: cargo install s3s-fs@0.14.1 --locked --features binary)")
        };
        let (child, port) = start_on_free_port("s3s-fs", Duration::from_secs(20), spawn, |_, _| true);
        let endpoint = format!("http://127.0.0.1:{port}");
        let store = S3Store::connect(Some(&endpoint)).unwrap();
        Self { child, _root: root, endpoint, store }
    }

    pub fn url(key: &str) -> String {
        format!("s3://{BUCKET}/{key}")
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> String {
        let url = Self::url(key);
        self.store.put_bytes(&S3Url::parse(&url).unwrap(), bytes.to_vec()).unwrap();
        url
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        let url = S3Url::parse(&Self::url(key)).unwrap();
        let (_, pin) = self.store.head_bytes(&url, 1, None).unwrap();
        self.store.get_range(&url, 0..pin.size, None).unwrap().to_vec()
    }

    /// `ifp` with this server's endpoint and credentials (`secret` overrides the secret key).
    pub fn ifp_with(&self, args: &[&str], secret: &str) -> Output {
        let mut c = self.command(&self.endpoint, args);
        c.env("AWS_SECRET_ACCESS_KEY", secret);
        c.output().expect("run ifp")
    }

    /// The `ifp` command with this server's credentials, pointed at `endpoint` (this server,
    /// or a proxy in front of it), with 4 KiB download parts.
    pub fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut c = Command::new(ifp_bin());
        c.args(args)
            .args(["--s3-endpoint", endpoint])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("IFP_S3_PART_BYTES", "4096")
            .env_remove("AWS_PROFILE");
        c
    }

    pub fn ifp(&self, args: &[&str]) -> Output {
        self.ifp_with(args, SECRET)
    }

    /// `n` Lambda emulators whose functions reach this server (endpoint and credentials) and
    /// cache compiled kernels in `cache`.
    pub fn emulators(&self, n: usize, cache: &Path) -> Vec<Emulator> {
        let env = [
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("IFP_S3_PART_BYTES", "4096".to_string()),
            ("IFP_KERNEL_CACHE", cache.display().to_string()),
        ];
        (0..n).map(|_| Emulator::start(&env)).collect()
    }

    /// `ifp run … --out FILE --quiet`, which must succeed; returns the result JSON.
    pub fn run_json(&self, dir: &Path, args: &[&str]) -> serde_json::Value {
        let out = dir.join("s3-result.json");
        let mut a = args.to_vec();
        a.extend(["--out", out.to_str().unwrap(), "--quiet"]);
        let o = self.ifp(&a);
        assert!(o.status.success(), "ifp {a:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        load_json(&out)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
