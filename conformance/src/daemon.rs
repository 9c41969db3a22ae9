//! The daemon binary (`porthole`, `porthole-smol`), started as a user would:
//! the README quickstart against it, configuration from the environment, and a
//! clean exit on SIGTERM and Ctrl-C (SIGINT). Run them all with
//! [`daemon_suite!`](crate::daemon_suite).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::client::{Client, Target};

/// A running `serve`, killed if the test fails before it stops it.
pub struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    /// Starts `exe serve ARGS` with `env` (and without the caller's
    /// `PORTHOLE_TOKEN`/`PORTHOLE_LISTEN`), and reads the address it prints.
    pub fn start(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .args(args)
            .env_remove("PORTHOLE_TOKEN")
            .env_remove("PORTHOLE_LISTEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the daemon");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the daemon prints its address");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Daemon { child, addr }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `signal` (a `kill` flag such as `-TERM`) and returns whether the
    /// process exited with status 0 in time.
    pub fn stop_with(mut self, signal: &str) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The README quickstart: bind two ports, stream one, send to it from the
/// other, heartbeat, unbind; then SIGTERM ends the other stream with
/// `shutdown`, frees its port, and exits 0.
pub fn quickstart_works_against_the_binary_and_sigterm_exits_cleanly(exe: &Path) {
    let daemon = Daemon::start(exe, &["--listen", "127.0.0.1:0"], &[]);
    assert!(daemon.addr.ip().is_loopback());
    let client = Client::new(daemon.addr);

    // Bind two ports: A will send to B.
    let a = client.post("/v1/udp/bind", "{}").expect(201);
    let b = client
        .post("/v1/udp/bind", r#"{"lease_secs": 60}"#)
        .expect(201);
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let b_addr = b["local_addr"].as_str().unwrap();

    // Stream B, send from A.
    let mut stream = client
        .stream(&format!("/v1/udp/recv/{b_id}"), &[])
        .expect("stream opens");
    let body = format!(r#"{{"dest": "{b_addr}", "payload": "aGVsbG8="}}"#);
    let sent = client
        .post(&format!("/v1/udp/send/{a_id}"), &body)
        .expect(200);
    assert_eq!(sent["sent"], 5);
    let event = stream.expect_event("datagram");
    let data = event.json();
    assert_eq!(data["src"], a["local_addr"]);
    let payload = base64::engine::general_purpose::STANDARD
        .decode(data["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload, b"hello");

    // Heartbeat and unbind.
    let renewed = client
        .put(&format!("/v1/udp/heartbeat/{b_id}"), "")
        .expect(200);
    assert_eq!(renewed["renewed"], b_id);
    client.delete(&format!("/v1/udp/bind/{b_id}")).expect(200);
    assert_eq!(stream.expect_event("closed").json()["reason"], "unbound");

    // SIGTERM: streams end with `shutdown`, sockets close, exit status 0.
    let mut a_stream = client
        .stream(&format!("/v1/udp/recv/{a_id}"), &[])
        .expect("stream opens");
    let a_addr: SocketAddr = a["local_addr"].as_str().unwrap().parse().unwrap();
    assert!(daemon.stop_with("-TERM"), "exit status 0 on SIGTERM");
    assert_eq!(a_stream.expect_event("closed").json()["reason"], "shutdown");
    UdpSocket::bind(a_addr).expect("the port is free after shutdown");
}

/// Flags come from `PORTHOLE_*` variables too; Ctrl-C exits 0.
pub fn binary_reads_its_flags_from_the_environment_and_exits_cleanly_on_ctrl_c(exe: &Path) {
    let daemon = Daemon::start(
        exe,
        &[],
        &[
            ("PORTHOLE_LISTEN", "127.0.0.1:0"),
            ("PORTHOLE_TOKEN", "hunter2"),
            ("PORTHOLE_MAX_BINDINGS", "1"),
        ],
    );
    let anonymous = Client::new(daemon.addr);
    anonymous
        .get("/v1/udp/status")
        .assert_error(401, "unauthorized");
    let client = Client::new(daemon.addr).with_header("Authorization", "Bearer hunter2");
    client.post("/v1/udp/bind", "{}").expect(201);
    client
        .post("/v1/udp/bind", "{}")
        .assert_error(429, "too_many_bindings");
    assert!(daemon.stop_with("-INT"), "exit status 0 on Ctrl-C");
}

/// A flag that does not parse is a usage error naming the flag, exit status 2.
pub fn binary_refuses_bad_flags_with_usage_errors(exe: &Path) {
    let output = Command::new(exe)
        .args(["serve", "--port-range", "9-1"])
        .env_remove("PORTHOLE_PORT_RANGE")
        .output()
        .expect("run the daemon");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("port-range"));
}

/// A configuration that parses but is unusable is refused the same way.
pub fn binary_refuses_an_unusable_configuration_with_status_2(exe: &Path) {
    let output = Command::new(exe)
        .args(["serve", "--max-bindings", "0"])
        .env_remove("PORTHOLE_MAX_BINDINGS")
        .output()
        .expect("run the daemon");
    assert_eq!(output.status.code(), Some(2));
    let name = exe.file_name().unwrap().to_string_lossy();
    assert!(String::from_utf8_lossy(&output.stderr).starts_with(&format!("{name}: ")));
}

/// The address of a `porthole listening on unix:/path` line.
fn unix_path(line: &str) -> Option<std::path::PathBuf> {
    line.trim()
        .rsplit_once("listening on unix:")
        .map(|(_, path)| path.into())
}

/// `--listen unix:/path` (with `--listen` repeated) serves the API on a Unix
/// socket with the `--unix-mode` permissions, replaces a stale socket file,
/// and removes the file on exit.
pub fn binary_listens_on_a_unix_socket_and_removes_it_on_exit(exe: &Path) {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("porthole.sock");
    // A daemon that was killed left its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("a stale socket"));
    let listen = format!("unix:{}", path.display());
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--listen", &listen])
        .args(["--unix-mode", "600"])
        .env_remove("PORTHOLE_LISTEN")
        .env_remove("PORTHOLE_TOKEN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the daemon");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("an address line");
        lines.push(line);
    }
    let daemon = Daemon {
        child,
        addr: "0.0.0.0:0".parse().expect("an address"),
    };
    assert!(lines[0].starts_with("porthole listening on http://127.0.0.1:"));
    assert_eq!(unix_path(&lines[1]).as_deref(), Some(path.as_path()));
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let client = Client::at(Target::Unix(path.clone()));
    let health = client.get("/healthz");
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    let b = client.post("/v1/udp/bind", "{}").expect(201);
    assert_eq!(
        client.get("/v1/udp/status").expect(200)["bindings"][0]["id"],
        b["id"]
    );
    assert!(daemon.stop_with("-TERM"), "exit status 0 on SIGTERM");
    assert!(!path.exists(), "the socket file is removed on exit");
}

/// Socket activation: a daemon started with a listening socket at fd 3 and
/// `LISTEN_FDS=1` for its own `LISTEN_PID` (as systemd starts it) serves that
/// socket and opens none of its own.
pub fn binary_serves_a_listener_handed_over_by_socket_activation(exe: &Path) {
    use command_fds::{CommandFdExt, FdMapping};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let addr = listener.local_addr().expect("its address");
    let mut command = Command::new("sh");
    // `exec` keeps the shell's pid, so `$$` is the daemon's LISTEN_PID.
    command
        .args([
            "-c",
            "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" serve",
            &exe.to_string_lossy(),
        ])
        .env_remove("PORTHOLE_LISTEN")
        .env_remove("PORTHOLE_TOKEN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
        .fd_mappings(vec![FdMapping {
            parent_fd: listener.into(),
            child_fd: 3,
        }])
        .expect("fd 3 is free");
    let mut child = command.spawn().expect("start the daemon");
    // The parent's copy goes with the command: only the daemon holds the socket.
    drop(command);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("the daemon prints its address");
    let daemon = Daemon { child, addr };
    assert_eq!(line.trim(), format!("porthole listening on http://{addr}"));
    let client = Client::new(addr);
    assert_eq!(client.get("/healthz").status, 200);
    client.post("/v1/udp/bind", "{}").expect(201);
    assert!(daemon.stop_with("-TERM"), "exit status 0 on SIGTERM");
    let mut rest = String::new();
    stdout
        .read_to_string(&mut rest)
        .expect("the rest of stdout");
    assert!(
        !rest.contains("listening on"),
        "no listener besides the inherited one: {rest:?}"
    );
}
