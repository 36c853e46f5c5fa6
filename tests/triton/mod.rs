//! A real Triton Inference Server for the tests: the `tritonserver` that
//! `scripts/setup.sh --test` installs (PyPI nvidia-pytriton 0.7.0: Triton 2.51), started on free
//! loopback ports through `scripts/tritonserver.sh` and killed with its Python-backend stubs
//! when dropped or when the test process exits (a server shared by a test binary is never
//! dropped) — and, should the process die, by the kernel (parent-death signal), so no server
//! outlives a run.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the server is installed; panics with the fix when it is not.
pub fn require_installed() {
    let venv = root().join(".deps/triton-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/setup.sh --test (it installs Triton for these tests)",
        venv.display()
    );
}

/// A free loopback port (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Servers are spawned by one thread that lives as long as the test process: the parent-death
/// signal fires when the spawning *thread* ends.
static SPAWNER: LazyLock<std::sync::Mutex<mpsc::Sender<SpawnRequest>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("triton-spawner".into())
        .spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
            // The process is ending; stay alive so that children are not signalled early.
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    std::sync::Mutex::new(tx)
});

/// Process groups of the servers running, killed when the process exits.
static GROUPS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

extern "C" fn kill_servers_at_exit() {
    if let Ok(groups) = GROUPS.try_lock() {
        for &group in groups.iter() {
            // SAFETY: signalling process groups this process started.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

fn spawn(mut command: Command) -> Child {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a function that only sends signals.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(kill_servers_at_exit);
    });
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Its own process group, so that killing the group also ends the Python-backend stubs.
    command.process_group(0);
    let (tx, rx) = mpsc::channel();
    SPAWNER.lock().unwrap().send((command, tx)).unwrap();
    let child = rx.recv().unwrap().expect("scripts/tritonserver.sh starts");
    GROUPS.lock().unwrap().push(child.id() as i32);
    child
}

/// A running `tritonserver`.
pub struct Triton {
    child: Option<Child>,
    pub grpc_port: u16,
    pub http_port: u16,
    pub repository: PathBuf,
    pub log: PathBuf,
}

impl Triton {
    /// Starts a server on `repository` on free ports and waits until it is ready.
    pub fn start(repository: &Path) -> Self {
        Self::start_on(repository, free_port(), free_port())
    }

    /// Starts a server on the given ports and waits until it is ready (at most 120 s).
    pub fn start_on(repository: &Path, grpc_port: u16, http_port: u16) -> Self {
        require_installed();
        let log = repository.with_extension(format!("{grpc_port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(root().join("scripts/tritonserver.sh"));
        command
            .arg(format!("--model-repository={}", repository.display()))
            .arg(format!("--grpc-port={grpc_port}"))
            .arg(format!("--http-port={http_port}"))
            .arg("--allow-metrics=false")
            .arg("--exit-timeout-secs=5")
            .arg("--log-info=false")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let mut server = Self {
            child: Some(spawn(command)),
            grpc_port,
            http_port,
            repository: repository.to_path_buf(),
            log,
        };
        server.wait_ready(Duration::from_secs(120));
        server
    }

    /// `device=` for the element.
    pub fn device(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.grpc_port)
    }

    /// What the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "tritonserver exited ({status}) before it was ready:\n{}",
                    self.log_text()
                );
            }
            if self.ready() {
                return;
            }
            if started.elapsed() > limit {
                panic!(
                    "tritonserver not ready after {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET /v2/health/ready` answers 200.
    pub fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.http_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.http_port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.1 200")
    }

    /// Kills the server and its Python-backend stubs at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = child.id() as i32;
            // SAFETY: signalling our own child's process group.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
            let _ = child.wait();
            GROUPS.lock().unwrap().retain(|&g| g != group);
        }
    }
}

impl Drop for Triton {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes a model repository of `models` for Triton's Python backend with `rsstyle
/// serve-repo`, plus `extra` arguments; returns the repository folder.
pub fn serve_repo(dir: &Path, models: &[&Path], extra: &[&str]) -> PathBuf {
    let repo = dir.join("repo");
    let out = Command::new(env!("CARGO_BIN_EXE_rsstyle"))
        .arg("serve-repo")
        .args(models)
        .arg(&repo)
        .args(["--backend", "python", "--threads", "1"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "serve-repo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo
}
