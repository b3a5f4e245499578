//! Ports on 127.0.0.1 for the services the tests start: picking a free one, starting a server
//! on it (again on a fresh port when a parallel test took it first), waiting for a listener.

use std::net::TcpListener;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port of 127.0.0.1 that was free a moment ago (the OS's pick for port 0).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a server on a port picked free, retrying on fresh ports. A port picked free can be
/// taken by a parallel test before the server binds it: the server then exits, or another
/// process answers on that port. So a start counts only when something listens on the port,
/// the child still runs a moment later, and `ours` (when given) confirms that the listener is
/// this child.
pub fn start_on_free_port(
    what: &str,
    timeout: Duration,
    mut spawn: impl FnMut(u16) -> Child,
    ours: impl Fn(&Child, u16) -> bool,
) -> (Child, u16) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = spawn(port);
        let started = Instant::now();
        let mut listening = false;
        while started.elapsed() < timeout && child.try_wait().unwrap().is_none() {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                listening = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if listening {
            std::thread::sleep(Duration::from_millis(100));
            if child.try_wait().unwrap().is_none() && ours(&child, port) {
                return (child, port);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start (three tries on fresh ports)");
}

/// Waits until something listens on `port` of 127.0.0.1.
pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
