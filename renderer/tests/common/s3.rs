//! A real S3-compatible server (s3s-fs) with credentials, so that it checks SigV4 presigned
//! URLs; bucket `pdfs`.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// A real S3-compatible server with credentials (so it checks signatures), bucket `pdfs`.
pub(crate) struct S3 {
    pub(crate) endpoint: String,
    pub(crate) root: tempfile::TempDir,
    child: Child,
}

impl S3 {
    pub(crate) fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("pdfs")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bin = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .unwrap()
            .join("bin/s3s-fs");
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "dev-access-key", "--secret-key", "dev-secret-key"])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{} must be installed by scripts/setup.sh: {e}", bin.display())
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { endpoint: format!("http://127.0.0.1:{port}"), root, child }
    }

    pub(crate) fn bucket(&self) -> Bucket {
        Bucket::new(self.endpoint.parse().unwrap(), UrlStyle::Path, "pdfs", "us-east-1").unwrap()
    }

    pub(crate) fn presign(
        &self,
        key: &str,
        content_type: Option<&str>,
        signed_at: Option<i64>,
    ) -> String {
        let credentials = Credentials::new("dev-access-key", "dev-secret-key");
        let bucket = self.bucket();
        let mut action = bucket.put_object(Some(&credentials), key);
        if let Some(ct) = content_type {
            action.headers_mut().insert("content-type", ct.to_owned());
        }
        let url = match signed_at {
            Some(t) => action
                .sign_with_time(Duration::from_secs(60), &jiff::Timestamp::from_second(t).unwrap()),
            None => action.sign(Duration::from_secs(3600)),
        };
        url.to_string()
    }

    pub(crate) fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.path().join("pdfs").join(key)).ok()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
