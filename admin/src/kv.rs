//! The `API_KEYS` namespace as the admin tool reaches it: [`KeyStore`], and its one real
//! implementation, [`Wrangler`], which runs `wrangler kv key …` against local development
//! storage (`wrangler dev`'s) or the deployed namespace.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::AdminError;

/// A KV namespace of text values.
pub trait KeyStore {
    fn get(&self, key: &str) -> Result<Option<String>, AdminError>;
    fn put(&self, key: &str, value: &str) -> Result<(), AdminError>;
    fn delete(&self, key: &str) -> Result<(), AdminError>;
    /// The keys starting with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>, AdminError>;
}

/// Where wrangler reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Local development storage, `wrangler dev`'s (in `persist_to`, else wrangler's default
    /// `.wrangler/state`).
    Local { persist_to: Option<PathBuf> },
    /// The deployed namespace (wrangler's login or `CLOUDFLARE_API_TOKEN`).
    Remote,
}

/// `wrangler kv key …` as a child process, each call within `timeout`.
#[derive(Debug, Clone)]
pub struct Wrangler {
    pub program: PathBuf,
    /// The wrangler.toml naming the binding.
    pub config: Option<PathBuf>,
    pub binding: String,
    pub location: Location,
    pub timeout: Duration,
}

/// What `wrangler kv key get --text` prints for a missing key (no value here is that text:
/// every value is JSON).
const NOT_FOUND: &str = "Value not found";

impl Wrangler {
    fn run(&self, args: &[&str]) -> Result<String, AdminError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(["kv", "key"]).args(args).args(["--binding", &self.binding]);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        match &self.location {
            Location::Local { persist_to } => {
                cmd.arg("--local");
                if let Some(dir) = persist_to {
                    cmd.arg("--persist-to").arg(dir);
                }
            }
            Location::Remote => {
                cmd.arg("--remote");
            }
        }
        let what = format!("wrangler kv key {}", args[0]);
        let failed = |e: std::io::Error| AdminError::Wrangler(format!("{what}: {e}"));
        let mut child = cmd
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(failed)?;
        // Read both pipes while waiting, so that a long listing cannot fill one and stall.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(failed)? {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AdminError::Wrangler(format!(
                    "{what}: no answer in {:?}",
                    self.timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        if !status.success() {
            // wrangler's own message says what is wrong (no login, no such binding, …); it
            // never holds a value, since values go through a file.
            let said = err.lines().chain(out.lines()).filter(|l| !l.trim().is_empty());
            let said: Vec<&str> = said.take(8).collect();
            return Err(AdminError::Wrangler(format!(
                "{what} failed ({status}): {}",
                said.join(" / ")
            )));
        }
        Ok(out)
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

impl KeyStore for Wrangler {
    fn get(&self, key: &str) -> Result<Option<String>, AdminError> {
        let out = self.run(&["get", key, "--text"])?;
        let value = out.strip_suffix('\n').unwrap_or(&out);
        Ok((value != NOT_FOUND).then(|| value.to_owned()))
    }

    fn put(&self, key: &str, value: &str) -> Result<(), AdminError> {
        // From a private file, not the command line, where other users of the machine could
        // read a webhook secret in the process list.
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|e| AdminError::Wrangler(format!("a temporary file: {e}")))?;
        file.write_all(value.as_bytes())
            .map_err(|e| AdminError::Wrangler(format!("a temporary file: {e}")))?;
        let path = file.path().to_string_lossy().into_owned();
        self.run(&["put", key, "--path", &path]).map(drop)
    }

    fn delete(&self, key: &str) -> Result<(), AdminError> {
        self.run(&["delete", key]).map(drop)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, AdminError> {
        let out = self.run(&["list", "--prefix", prefix])?;
        let entries: Vec<serde_json::Value> = serde_json::from_str(&out).map_err(|e| {
            AdminError::Wrangler(format!("wrangler kv key list printed no JSON list: {e}"))
        })?;
        Ok(entries.iter().filter_map(|e| e["name"].as_str().map(String::from)).collect())
    }
}

/// A namespace in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore(pub Mutex<BTreeMap<String, String>>);

impl KeyStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<String>, AdminError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }

    fn put(&self, key: &str, value: &str) -> Result<(), AdminError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key.into(), value.into());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), AdminError> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, AdminError> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}
