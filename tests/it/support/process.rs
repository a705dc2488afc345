//! Child processes for tests, one way for all of them (redis-server, the aiosmtpd sink, Chromium,
//! the docgate binary): spawn, wait (bounded) until ready, signal, restart on the same port, stop;
//! killed and reaped on drop whichever way the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it is spawned, and a restart to succeed.
pub const READY: Duration = Duration::from_secs(10);

/// How long a child that has exited may still be heard: what it wrote last can reach the reader
/// of its pipe after its exit is seen.
const LAST_WORDS: Duration = Duration::from_secs(5);

/// A free loopback port: bound, read, released. Another process could take it before it is used;
/// on loopback in a test run that window is harmless in practice, and servers that fail to bind
/// are retried by [`Daemon::start`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One child process, killed and reaped on drop. With `group`, it was started in a process group
/// of its own and the whole group is killed (a browser and its renderers).
pub struct ChildProcess {
    child: Child,
    group: bool,
}

impl ChildProcess {
    /// Spawns `command`; panics with `hint` when the program cannot start (not installed).
    pub fn spawn(command: &mut Command, hint: &str) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{:?} did not start ({e}): {hint}", command.get_program()));
        Self {
            child,
            group: false,
        }
    }

    /// As [`ChildProcess::spawn`], in a process group of its own, killed as a whole.
    pub fn spawn_group(command: &mut Command, hint: &str) -> Self {
        std::os::unix::process::CommandExt::process_group(command, 0);
        let mut process = Self::spawn(command, hint);
        process.group = true;
        process
    }

    /// Waits (bounded by `within`) until `ready` holds; false if the process exited first or the
    /// time ran out (then it is killed).
    pub fn wait_ready(&mut self, within: Duration, mut ready: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return false;
            }
            if ready() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Waits (bounded, without blocking the runtime) until `ready` gives a value; panics, with
    /// `output()` (what the child said so far), if it exits first or the time runs out. A child
    /// that has exited may still have its last words in the pipe: `ready` is asked again for
    /// [`LAST_WORDS`] before the panic.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        within: Duration,
        mut ready: impl FnMut() -> Option<T>,
        output: impl Fn() -> String,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = ready() {
                return value;
            }
            if let Some(status) = self.exited() {
                let heard = Instant::now() + LAST_WORDS;
                while Instant::now() < heard {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if let Some(value) = ready() {
                        return value;
                    }
                }
                panic!(
                    "the process exited ({status}) before {what}; it said:\n{}",
                    output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {within:?}; the process said:\n{}",
                output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded, without blocking the runtime) for the process to exit.
    pub async fn exit(&mut self, within: Duration, output: impl Fn() -> String) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit within {within:?}; it said so far:\n{}",
                output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`); panics if it cannot be sent.
    pub fn signal(&self, name: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid}: {status}");
    }

    /// Kills the process (and its group) and reaps it.
    pub fn kill(&mut self) {
        if self.group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid())])
                .stderr(std::process::Stdio::null())
                .status();
        }
        // Already reaped: std knows, and neither call touches another process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port kept for a daemon while it is not running: a socket bound to it that does not
/// listen. Connecting to the port is refused, as to any closed port, but the kernel gives it to no
/// `bind` to port 0 (another test's server, a docgate's own listeners, which would otherwise answer
/// the daemon's clients in its place), so the daemon finds its port free when it starts again.
/// `SO_REUSEADDR`, so it can be taken while the stopped daemon's closed connections linger in
/// `TIME_WAIT`. Dropped just before the daemon is spawned.
struct Hold(socket2::Socket);

impl Hold {
    /// Holds `port` (0: one the kernel picks); `None` if another socket has it.
    fn port(port: u16) -> Option<Self> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
        socket.set_reuse_address(true).ok()?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket.bind(&addr.into()).ok()?;
        Some(Self(socket))
    }

    /// Holds a free port the kernel picks.
    fn any() -> Self {
        Self::port(0).expect("a free loopback port")
    }

    fn number(&self) -> u16 {
        self.0
            .local_addr()
            .ok()
            .and_then(|addr| addr.as_socket())
            .expect("a bound IPv4 socket")
            .port()
    }
}

/// A server process on a loopback port of its own, that an outage test stops and restarts on the
/// same port (held while it is stopped: [`Hold`]). `command` builds its command line for a port;
/// `ready` says whether the port answers, and must not wait long for an answer (the port may be
/// another server's if the daemon failed to bind it).
pub struct Daemon {
    pub port: u16,
    name: &'static str,
    hint: &'static str,
    command: Box<dyn Fn(u16) -> Command + Send + Sync>,
    ready: fn(u16) -> bool,
    process: Option<ChildProcess>,
    hold: Option<Hold>,
}

impl Daemon {
    /// A daemon with a port but not running yet (an outage); [`Daemon::restart`] starts it.
    pub fn reserved(
        name: &'static str,
        hint: &'static str,
        command: impl Fn(u16) -> Command + Send + Sync + 'static,
        ready: fn(u16) -> bool,
    ) -> Self {
        let hold = Hold::any();
        Self {
            port: hold.number(),
            name,
            hint,
            command: Box::new(command),
            ready,
            process: None,
            hold: Some(hold),
        }
    }

    /// Starts the daemon on a free port, trying another one (up to five) if it cannot bind.
    pub fn start(
        name: &'static str,
        hint: &'static str,
        command: impl Fn(u16) -> Command + Send + Sync + 'static,
        ready: fn(u16) -> bool,
    ) -> Self {
        let mut daemon = Self::reserved(name, hint, command, ready);
        for _ in 0..5 {
            if daemon.spawn() {
                return daemon;
            }
            let hold = Hold::any();
            daemon.port = hold.number();
            daemon.hold = Some(hold);
        }
        panic!("{name} did not start: {hint}");
    }

    /// Whether the process runs (not stopped for an outage).
    pub fn running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the process (an outage), and holds its port until it starts again.
    pub fn stop(&mut self) {
        self.process = None;
        self.hold = self.hold.take().or_else(|| Hold::port(self.port));
    }

    /// Starts the process (again) on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY;
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not restart on port {}", self.name, self.port);
    }

    /// Sends a signal to the running process.
    pub fn signal(&self, name: &str) {
        self.process
            .as_ref()
            .expect("the server is running")
            .signal(name);
    }

    /// Spawns the process and waits (bounded) for it to answer; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        self.hold = None;
        let mut process = ChildProcess::spawn(&mut (self.command)(self.port), self.hint);
        let (ready, port) = (self.ready, self.port);
        if process.wait_ready(READY, || ready(port)) {
            self.process = Some(process);
            true
        } else {
            false
        }
    }
}

/// One output stream of a child, read to its end on a background thread so no pipe fills.
#[derive(Clone, Default)]
pub struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl Captured {
    pub fn read_from(pipe: impl Read + Send + 'static) -> Self {
        let captured = Self::default();
        let sink = captured.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink.bytes.lock().unwrap().extend_from_slice(&line),
                }
            }
            sink.done.store(true, Ordering::SeqCst);
        });
        captured
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// Whether the stream has been read to its end.
    pub fn done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}
