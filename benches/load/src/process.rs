//! A server under test in a child process: started by re-running this
//! program with `--server <kind>`, stopped by closing its stdin.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LoadError;
use crate::server::{drain, parse_announcement, ServerKind};

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a server may take to exit once its stdin is closed (Porthole
/// gives open requests up to 5 s) before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(8);

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    kind: ServerKind,
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts a server and waits until it listens.
    pub fn start(kind: ServerKind) -> Result<Self, LoadError> {
        Self::spawn(kind, &[])
    }

    /// Starts a `porthole forward` on `kind`'s runtime, leasing a host port
    /// from the daemon at `daemon` and forwarding it to `to`; its
    /// [`addr`](Self::addr) is the leased host address.
    pub fn start_forwarder(
        kind: ServerKind,
        daemon: SocketAddr,
        to: SocketAddr,
    ) -> Result<Self, LoadError> {
        Self::spawn(
            kind,
            &[
                format!("--forward-daemon={daemon}"),
                format!("--forward-to={to}"),
            ],
        )
    }

    fn spawn(kind: ServerKind, args: &[String]) -> Result<Self, LoadError> {
        let exe = std::env::current_exe()?;
        // For profiling: `PORTHOLE_LOAD_WRAPPER="valgrind --tool=callgrind"`
        // runs each server under that command.
        let wrapper = std::env::var("PORTHOLE_LOAD_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg("--server")
            .arg(kind.name())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let failed = |detail: String| LoadError::Server {
            kind: kind.name(),
            detail,
        };
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed("no stdout".into()));
        };
        // Read the announcement on a thread, so a server that hangs cannot hang us.
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            drain(reader);
        });
        let addr = line_rx
            .recv_timeout(START_TIMEOUT)
            .ok()
            .and_then(|line| parse_announcement(&line));
        match addr {
            Some(addr) => Ok(ServerProcess {
                kind,
                child,
                stdin,
                addr,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(failed("did not announce its address".into()))
            }
        }
    }

    /// Which server.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// CPU time it used so far (user + system, all threads).
    pub fn cpu_time(&self) -> Result<Duration, LoadError> {
        self.cpu_split().map(|(user, system)| user + system)
    }

    /// CPU time it used so far in user space and in the kernel (all threads).
    pub fn cpu_split(&self) -> Result<(Duration, Duration), LoadError> {
        process_cpu(self.child.id()).ok_or_else(|| LoadError::Server {
            kind: self.kind.name(),
            detail: "unreadable /proc/<pid>/stat".into(),
        })
    }

    /// Its resident set size (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> Result<u64, LoadError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| LoadError::Server {
                kind: self.kind.name(),
                detail: "no VmRSS in /proc/<pid>/status".into(),
            })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time a process used so far in user space and in the kernel (all
/// threads), from `/proc/<pid>/stat`, in clock ticks of 10 ms (Linux's
/// `USER_HZ` on x86-64).
pub fn process_cpu(pid: u32) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((
        Duration::from_millis(ticks(11)? * 10),
        Duration::from_millis(ticks(12)? * 10),
    ))
}
