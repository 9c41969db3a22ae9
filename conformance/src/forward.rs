//! `porthole forward` end to end, with unmodified third-party programs on
//! loopback: Debian's `dnsmasq` behind an inbound forward, queried by several
//! `dig` processes at once through the leased host port; a `socat` UDP echo
//! reached by an outbound forward; refusals; SIGTERM unbinding. Each binary's
//! tests instantiate these cases with
//! [`forward_suite!`](crate::forward_suite).
//!
//! The tools are required, never skipped: `.ci/run` installs them
//! (`apt-get install dnsmasq bind9-dnsutils socat`), and a case fails with a
//! message saying so when one is missing.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::daemon::Daemon;

/// How long any one step may take before the case fails.
const STEP: Duration = Duration::from_secs(10);

/// Peers querying dnsmasq through the forward at once.
const DIG_PEERS: u8 = 6;

/// The path of `tool`, looked up in `PATH` and the sbin directories (where
/// Debian puts `dnsmasq`, outside a normal user's `PATH`).
///
/// # Panics
///
/// When the tool is missing, saying how to install it.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not installed: the forward tests need it \
                 (`apt-get install {package}`; `.ci/run` installs it)"
            )
        })
}

/// A free loopback UDP port (free when this returns; the OS does not hand it
/// out again at once).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a loopback UDP port")
        .port()
}

/// A child process in a process group of its own, which is killed (with
/// whatever the child forked, such as socat's per-peer processes) when this
/// goes: at the end of the case, or if it fails first.
struct Reaped(Child);

impl Reaped {
    fn spawn(command: &mut Command) -> Self {
        Reaped(
            command
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {command:?}: {e}")),
        )
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// Sends `signal` (a `kill` flag such as `-TERM`) to `child` and waits, at
/// most [`STEP`], for it to exit.
fn stop(child: &mut Child, signal: &str) -> ExitStatus {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal}");
    wait(child)
}

/// Waits, at most [`STEP`], for `child` to exit.
fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A running `porthole forward`, and the host address it leased.
pub struct Forward {
    child: Reaped,
    stdout: BufReader<ChildStdout>,
    host: SocketAddr,
    status_line: String,
}

/// How a forward ended: its exit status and what it printed after its status line.
#[derive(Debug)]
pub struct Ended {
    /// The exit status.
    pub status: ExitStatus,
    /// stdout after the status line (the counters).
    pub stdout: String,
}

impl Forward {
    /// Starts `exe forward ARGS` against `daemon` and reads its status line,
    /// `porthole forward: … HOST (host) …`.
    pub fn start(exe: &Path, daemon: &Daemon, args: &[&str]) -> Self {
        let server = format!("http://{}", daemon.addr());
        let mut child = Reaped::spawn(
            forward_command(exe, &server, args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout is piped"));
        let mut status_line = String::new();
        stdout
            .read_line(&mut status_line)
            .expect("porthole forward prints its status line");
        let host = status_line
            .split(" (host)")
            .next()
            .and_then(|before| before.rsplit(' ').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no `ADDR (host)` in the status line {status_line:?}"));
        Forward {
            child,
            stdout,
            host,
            status_line,
        }
    }

    /// The leased host address.
    pub fn host(&self) -> SocketAddr {
        self.host
    }

    /// Sends `signal` (`-TERM`, or `-INT` as Ctrl-C does) and collects the
    /// exit status and the counters.
    pub fn stop(mut self, signal: &str) -> Ended {
        let status = stop(&mut self.child.0, signal);
        let mut stdout = String::new();
        self.stdout
            .read_to_string(&mut stdout)
            .expect("read the forward's stdout");
        Ended { status, stdout }
    }
}

/// `exe forward --server=SERVER ARGS`, without the caller's `PORTHOLE_TOKEN`
/// and `PORTHOLE_SERVER`.
fn forward_command(exe: &Path, server: &str, args: &[&str]) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("forward")
        .arg(format!("--server={server}"))
        .args(args)
        .env_remove("PORTHOLE_TOKEN")
        .env_remove("PORTHOLE_SERVER")
        .stdin(Stdio::null());
    command
}

/// Runs `exe forward ARGS` against `server` to its end (a refusal), and
/// returns its exit status and stderr.
fn forward_refused(exe: &Path, server: &str, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Reaped::spawn(
        forward_command(exe, server, args)
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = wait(&mut child.0);
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}

/// A `dnsmasq` answering `p<N>.test` with `10.1.2.<N>` for N in
/// `1..=DIG_PEERS`, on a loopback port, no upstream, no files read.
struct Dnsmasq {
    _child: Reaped,
    port: u16,
}

impl Dnsmasq {
    fn start() -> Self {
        let dnsmasq = require_tool("dnsmasq", "dnsmasq");
        let port = free_udp_port();
        let mut command = Command::new(dnsmasq);
        command
            .args([
                "--keep-in-foreground",
                "--no-daemon",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-dhcp-interface=lo",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .args((1..=DIG_PEERS).map(|n| format!("--address=/p{n}.test/10.1.2.{n}")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // As root, dnsmasq drops to this user (Debian's default user may not
        // exist in a container); as anyone else it keeps its own.
        if is_root() {
            command.arg("--user=nobody");
        }
        let child = Reaped::spawn(&mut command);
        let dnsmasq = Dnsmasq {
            _child: child,
            port,
        };
        // Ready once it answers directly.
        let direct = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + STEP;
        while dig(direct, "p1.test").as_deref() != Ok("10.1.2.1") {
            assert!(
                Instant::now() < deadline,
                "dnsmasq does not answer on {direct}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        dnsmasq
    }
}

/// Whether the tests run as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// `dig +short NAME` at `server`: the answer, or the error output.
fn dig(server: SocketAddr, name: &str) -> Result<String, String> {
    let out = dig_command(server, name)
        .output()
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !answer.is_empty() {
        Ok(answer)
    } else {
        Err(format!("{}{answer}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn dig_command(server: SocketAddr, name: &str) -> Command {
    let mut command = Command::new(require_tool("dig", "bind9-dnsutils"));
    command
        .arg(format!("@{}", server.ip()))
        .arg(format!("-p{}", server.port()))
        .args(["+short", "+time=3", "+tries=1", "+notcp", name, "A"])
        .stdin(Stdio::null());
    command
}

/// The first number after `name=` in the counters line, e.g. `peers=3`.
pub fn counter(stdout: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix(&key))
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {stdout:?}"))
}

/// Asserts the daemon holds no binding any more.
fn assert_unbound(daemon: &Daemon) {
    let status = Client::new(daemon.addr()).get("/v1/udp/status").expect(200);
    assert_eq!(
        status["bindings"].as_array().map(Vec::len),
        Some(0),
        "the forward unbound on SIGTERM: {status}"
    );
}

/// dnsmasq behind `porthole forward --remote … --to …`: several `dig`
/// processes at once (each its own source port, so its own peer) query the
/// leased host port, and each gets the answer to its own name; SIGTERM then
/// unbinds and exits 0 with the counters.
pub fn dnsmasq_behind_forward_answers_several_dig_peers_at_once(exe: &Path) {
    let dnsmasq = Dnsmasq::start();
    let daemon = Daemon::start(exe, &["--listen", "127.0.0.1:0"], &[]);
    let to = format!("--to=127.0.0.1:{}", dnsmasq.port);
    let forward = Forward::start(exe, &daemon, &["--remote=127.0.0.1:0", &to]);
    assert!(forward.host().ip().is_loopback());
    assert_ne!(forward.host().port(), 0, "{}", forward.status_line);

    let digs: Vec<(u8, Reaped)> = (1..=DIG_PEERS)
        .map(|n| {
            let child = Reaped::spawn(
                dig_command(forward.host(), &format!("p{n}.test"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null()),
            );
            (n, child)
        })
        .collect();
    for (n, mut dig) in digs {
        let mut answer = String::new();
        dig.0
            .stdout
            .take()
            .expect("stdout is piped")
            .read_to_string(&mut answer)
            .expect("read dig's answer");
        let status = wait(&mut dig.0);
        assert!(status.success(), "dig p{n}.test: {status}, {answer:?}");
        assert_eq!(answer.trim(), format!("10.1.2.{n}"), "dig p{n}.test");
    }
    // A second round from one peer at a time goes the same way.
    assert_eq!(dig(forward.host(), "p3.test").as_deref(), Ok("10.1.2.3"));

    let ended = forward.stop("-TERM");
    assert!(
        ended.status.success(),
        "SIGTERM: {} {}",
        ended.status,
        ended.stdout
    );
    let peers = u64::from(DIG_PEERS) + 1;
    assert_eq!(counter(&ended.stdout, "peers"), peers, "{}", ended.stdout);
    assert_eq!(counter(&ended.stdout, "in"), peers, "{}", ended.stdout);
    assert_eq!(counter(&ended.stdout, "out"), peers, "{}", ended.stdout);
    assert_eq!(counter(&ended.stdout, "lost"), 0, "{}", ended.stdout);
    assert_unbound(&daemon);
    assert!(daemon.stop_with("-TERM"));
}

/// `porthole forward --listen … --dest …` to a `socat` UDP echo: the
/// application's datagrams reach the echo from the leased host port, and the
/// replies come back to the application; Ctrl-C (SIGINT) unbinds and exits 0.
pub fn outbound_forward_reaches_a_socat_echo_from_the_host_port(exe: &Path) {
    let socat = require_tool("socat", "socat");
    let echo_port = free_udp_port();
    // One child per peer; it first says which port the peer sent from.
    let echo = Reaped::spawn(
        Command::new(socat)
            .args(["-T", "30"])
            .arg(format!("UDP4-LISTEN:{echo_port},bind=127.0.0.1,fork"))
            .arg("SYSTEM:echo peer=$SOCAT_PEERPORT; exec cat")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let daemon = Daemon::start(exe, &["--listen", "127.0.0.1:0"], &[]);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let forward = Forward::start(
        exe,
        &daemon,
        &[
            &format!("--listen={listen}"),
            &format!("--dest=127.0.0.1:{echo_port}"),
        ],
    );
    let app = UdpSocket::bind("127.0.0.1:0").expect("bind the application");
    app.set_read_timeout(Some(STEP)).expect("set a timeout");

    // socat may take a moment to listen: the first datagram is retried.
    let deadline = Instant::now() + STEP;
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    'first: loop {
        app.send_to(b"ping0", listen).expect("send to the forward");
        app.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("set a timeout");
        while let Ok((n, from)) = app.recv_from(&mut buf) {
            assert_eq!(
                from, listen,
                "replies come from the forward's local address"
            );
            received.extend_from_slice(&buf[..n]);
            if received.ends_with(b"ping0") {
                break 'first;
            }
        }
        assert!(Instant::now() < deadline, "no echo; got {received:?}");
    }
    app.set_read_timeout(Some(STEP)).expect("set a timeout");
    // The echo's socket saw the leased host port as its peer (and only it:
    // a retried first datagram lands in the same child).
    let text = String::from_utf8_lossy(&received).into_owned();
    let peer_port: u16 = text
        .strip_prefix("peer=")
        .and_then(|rest| rest.split('\n').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no peer= line first in {text:?}"));
    assert_eq!(peer_port, forward.host().port());

    // One at a time (the echo is a byte stream inside socat).
    for i in 1..5 {
        let ping = format!("ping{i}");
        app.send_to(ping.as_bytes(), listen).expect("send");
        let (n, _) = app.recv_from(&mut buf).expect("the echo comes back");
        assert_eq!(&buf[..n], ping.as_bytes());
    }

    // Ctrl-C unbinds as SIGTERM does.
    let ended = forward.stop("-INT");
    assert!(ended.status.success(), "Ctrl-C: {}", ended.status);
    assert!(counter(&ended.stdout, "out") >= 5, "{}", ended.stdout);
    assert!(counter(&ended.stdout, "in") >= 5, "{}", ended.stdout);
    assert_unbound(&daemon);
    drop(echo);
    assert!(daemon.stop_with("-TERM"));
}

/// A daemon that refuses the lease (port outside its range, port in use, bad
/// token) or cannot be reached: the forward exits 1 at once with a message
/// that says why.
pub fn forward_refusals_exit_1_with_the_reason(exe: &Path) {
    let daemon = Daemon::start(
        exe,
        &["--listen", "127.0.0.1:0", "--port-range=40000-40099"],
        &[("PORTHOLE_TOKEN", "s3cret")],
    );
    let server = format!("http://{}", daemon.addr());
    let in_use = UdpSocket::bind("127.0.0.1:40050").expect("hold a port in the range");
    let held = in_use.local_addr().expect("its address").to_string();
    for (args, reason) in [
        (
            vec![
                "--token=s3cret",
                "--remote=127.0.0.1:5353",
                "--to=127.0.0.1:53",
            ],
            "port",
        ),
        (
            vec![
                "--token=s3cret",
                "--remote",
                held.as_str(),
                "--to=127.0.0.1:53",
            ],
            "in use",
        ),
        (
            vec![
                "--token=wrong",
                "--remote=127.0.0.1:40001",
                "--to=127.0.0.1:53",
            ],
            "token",
        ),
    ] {
        let (status, stderr) = forward_refused(exe, &server, &args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.to_lowercase().contains(reason),
            "{args:?}: {reason:?} not in {stderr:?}"
        );
    }
    let nobody = format!("http://127.0.0.1:{}", free_udp_port());
    let (status, stderr) = forward_refused(
        exe,
        &nobody,
        &["--remote=127.0.0.1:40001", "--to=127.0.0.1:53"],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.is_empty());
    assert!(daemon.stop_with("-TERM"));
}
