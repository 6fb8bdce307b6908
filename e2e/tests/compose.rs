//! docker/compose.yaml as users run it, with podman-compose (PyPI's, pinned in
//! scripts/requirements.txt): `up`, an async render through `wrangler dev` on the host into the
//! compose bucket with a webhook to the host, then `down`. The images are those
//! `scripts/image.sh compose` builds from this run's binaries under compose's own names, so
//! compose builds nothing. Ports move off the local-stack defaults (RENDERER_PORT, BUCKET_PORT,
//! EDGE_PORT), and the host's address on compose's network is given as EDGE_HOST_GATEWAY,
//! which podman 4.3 needs instead of `host-gateway`.
#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::json;
use tailpdf_e2e::{
    client::{client, seed_verifies, send},
    container::{podman, podman_env, podman_ok},
    free_port, root,
    stack::{
        dev_upload_url, ok, wait_until, Edge, EdgeOptions, Receiver, API_KEY, INTERNAL_SECRET,
        WEBHOOK_SECRET,
    },
};

/// compose.yaml's project network, made beforehand so that the host's address on it is known.
const NETWORK: &str = "tailpdf_default";
const SUBNET: &str = "10.89.77.0/24";
const GATEWAY: &str = "10.89.77.1";

struct Compose {
    env: Vec<(&'static str, String)>,
}

impl Compose {
    /// podman-compose `args`, within two minutes (podman can hang on what it cannot do).
    fn run(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("120")
            .arg(root().join(".venv/bin/podman-compose"))
            .envs(podman_env())
            .envs(self.env.iter().map(|(k, v)| (*k, v)))
            .args(["-f", "docker/compose.yaml"])
            .args(args)
            .current_dir(root())
            .output()
            .unwrap()
    }

    /// Nothing of the project left: containers, volumes, its network.
    fn clear(&self) {
        let _ = self.run(&["down", "-v", "-t", "0"]);
        let _ = podman().args(["network", "rm", "-f", NETWORK]).output();
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        self.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_up_renders_and_comes_down() {
    let out = Command::new(root().join("scripts/image.sh")).arg("compose").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains("image:")) {
        eprintln!("{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (renderer_port, bucket_port, edge_port) = (free_port(), free_port(), free_port());
    let compose = Compose {
        env: vec![
            ("RENDERER_PORT", renderer_port.to_string()),
            ("BUCKET_PORT", bucket_port.to_string()),
            ("EDGE_PORT", edge_port.to_string()),
            ("EDGE_HOST_GATEWAY", GATEWAY.to_owned()),
            ("TAILPDF_INTERNAL_SECRET", INTERNAL_SECRET.to_owned()),
        ],
    };
    compose.clear(); // what an interrupted run left
    podman_ok(&["network", "create", "--subnet", SUBNET, "--gateway", GATEWAY, NETWORK]);

    let started = Instant::now();
    let up = compose.run(&["up", "-d"]);
    assert!(up.status.success(), "up: {}", String::from_utf8_lossy(&up.stderr));
    let renderer = format!("http://127.0.0.1:{renderer_port}");
    wait_until("the renderer", Duration::from_secs(60), async || {
        ok(&format!("{renderer}/readyz")).await
    })
    .await;
    eprintln!("compose: up and ready in {:.1?}", started.elapsed());

    // The edge on the host, where the containers reach it (host.docker.internal).
    let receiver = Receiver::start(0).await;
    let options = EdgeOptions::new(&renderer).ip(GATEWAY);
    let mut edge = Edge::spawn(dir.path(), edge_port, &options);
    edge.wait_ready().await;

    // The seed's async flow: presigned for the bucket as the local stack names it.
    let upload_url = dev_upload_url("http://127.0.0.1:9000", "compose.pdf");
    let body = json!({
        "content": "<h1 class=\"text-3xl font-bold\">Composed</h1>",
        "async": true, "upload_url": upload_url, "webhook_url": receiver.url,
    });
    let reply =
        send(client().post(format!("{}/pdf", edge.url)).header("X-API-Key", API_KEY).json(&body))
            .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["job_id"].as_str().unwrap().to_owned();
    wait_until("the webhook", Duration::from_secs(60), async || !receiver.for_job(&id).is_empty())
        .await;
    let hook = &receiver.for_job(&id)[0];
    assert_eq!(hook.header("x-tailpdf-event"), "render.completed", "{}", edge.log());
    assert!(seed_verifies(&hook.body, hook.header("x-tailpdf-signature"), WEBHOOK_SECRET));
    let size = podman_ok(&["exec", "tailpdf_s3_1", "stat", "-c", "%s", "/data/pdfs/compose.pdf"]);
    assert_eq!(size, hook.json()["data"]["file_size_bytes"].to_string());

    // Both services end on SIGTERM, not on the SIGKILL that follows the grace period (137).
    let stopping = Instant::now();
    let stop = compose.run(&["stop", "-t", "40"]);
    assert!(stop.status.success(), "stop: {}", String::from_utf8_lossy(&stop.stderr));
    for service in ["tailpdf_s3_1", "tailpdf_renderer_1"] {
        let code = podman_ok(&["inspect", service, "--format", "{{.State.ExitCode}}"]);
        assert_ne!(code, "137", "{service} was killed after the grace period");
    }
    let down = compose.run(&["down", "-t", "40"]);
    assert!(down.status.success(), "down: {}", String::from_utf8_lossy(&down.stderr));
    let left =
        podman_ok(&["ps", "-a", "--filter", "label=io.podman.compose.project=tailpdf", "-q"]);
    assert!(left.is_empty(), "containers left after down: {left}");
    eprintln!(
        "compose: a job rendered into the compose bucket; stop and down in {:.1?}",
        stopping.elapsed()
    );
}
