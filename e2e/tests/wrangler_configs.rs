//! The two wrangler configurations, wrangler.toml (renderers of your own, push or pull) and
//! wrangler.containers.toml (Containers mode), describe one service: the second is the first
//! with the container pool instead of RENDERER_URL, and nothing else differs. `make test`
//! also has wrangler accept both (`make check-edge`, a dry-run deploy of each).

use std::path::Path;

use tailpdf_edge::{config::EdgeConfig, containers};
use toml::{Table, Value};

fn read(name: &str) -> Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    text.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn array<'a>(t: &'a Table, path: &[&str]) -> &'a Vec<Value> {
    let mut v = t.get(path[0]).unwrap_or_else(|| panic!("no {path:?}"));
    for key in &path[1..] {
        v = v.get(key).unwrap_or_else(|| panic!("no {path:?}"));
    }
    v.as_array().unwrap_or_else(|| panic!("{path:?} is not an array"))
}

fn array_mut<'a>(t: &'a mut Table, path: &[&str]) -> &'a mut Vec<Value> {
    let mut v = t.get_mut(path[0]).expect("the path");
    for key in &path[1..] {
        v = v.get_mut(key).expect("the path");
    }
    v.as_array_mut().expect("an array")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("no string {key} in {v:?}"))
}

/// What Containers mode adds, taken out again, leaves wrangler.toml.
#[test]
fn the_containers_configuration_is_the_push_one_with_a_pool_instead_of_renderer_url() {
    let mut push = read("wrangler.toml");
    let mut pool = read("wrangler.containers.toml");

    let containers =
        pool.remove("containers").expect("wrangler.containers.toml has [[containers]]");
    let containers = containers.as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let class = str_of(container, "class_name").to_owned();

    let bindings = array_mut(&mut pool, &["durable_objects", "bindings"]);
    let at = bindings.iter().position(|b| str_of(b, "class_name") == class).unwrap();
    let binding = bindings.remove(at);
    assert_eq!(str_of(&binding, "name"), containers::BINDING, "the binding the edge looks up");

    let migrations = array_mut(&mut pool, &["migrations"]);
    let last = migrations.pop().unwrap();
    let new_classes = last.get("new_sqlite_classes").and_then(Value::as_array).unwrap();
    assert_eq!(new_classes, &vec![Value::from(class.as_str())], "a migration of its own, last");

    let vars = pool.get_mut("vars").and_then(Value::as_table_mut).unwrap();
    let instances: u32 =
        str_of(&Value::Table(vars.clone()), "RENDERER_CONTAINERS").parse().unwrap();
    let added = [
        "RENDERER_CONTAINERS",
        "CONTAINER_SLEEP_AFTER_SECS",
        "CONTAINER_START_TIMEOUT_SECS",
        "CONTAINER_TABS",
    ];
    for name in added {
        assert!(vars.remove(name).is_some(), "{name}");
    }
    let push_vars = push.get_mut("vars").and_then(Value::as_table_mut).unwrap();
    assert!(push_vars.remove("RENDERER_URL").is_some());
    assert_eq!(pool, push, "everything else is the same");

    // The pool fits the application, and the edge reads the variables as meant.
    let max = container.get("max_instances").and_then(Value::as_integer).unwrap();
    assert!(instances >= 1 && i64::from(instances) <= max, "{instances} of at most {max}");
    let pool_vars = read("wrangler.containers.toml")["vars"].as_table().unwrap().clone();
    let get = |name: &str| match name {
        "INTERNAL_SECRET" => Some(String::from("s")),
        "EDGE_URL" => Some(String::from("https://tailpdf.example.workers.dev")),
        _ => pool_vars.get(name).and_then(Value::as_str).map(str::to_owned),
    };
    let cfg = EdgeConfig::from_vars(get).unwrap();
    assert_eq!(cfg.containers.as_ref().map(|c| c.instances), Some(instances));
    assert_eq!(cfg.renderers, containers::origins(instances));
}

/// The image is the renderer's: the Dockerfile's last stage, the default target, is the one
/// that runs `tailpdf-renderer serve` on the port the objects call.
#[test]
fn the_container_image_is_the_renderer_s() {
    let pool = read("wrangler.containers.toml");
    let container = &array(&pool, &["containers"])[0];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = std::fs::read_to_string(root.join(str_of(container, "image"))).unwrap();
    let last_stage = dockerfile.lines().rfind(|l| l.starts_with("FROM ")).unwrap();
    assert!(last_stage.ends_with(" AS renderer"), "{last_stage}");
    assert!(root.join(str_of(container, "image_build_context")).join("Cargo.toml").exists());
    let listen = format!("TAILPDF_LISTEN=0.0.0.0:{}", containers::RENDERER_PORT);
    assert!(dockerfile.contains(&listen), "the image listens where the objects call");
    // The instance type has room for the renderer's measured peak (BENCHMARKS.md: 929 MiB
    // PSS over 10,000 renders at 2 tabs) twice over: standard-1 and up.
    let memory_mib = match str_of(container, "instance_type") {
        "lite" => 256,
        "basic" => 1024,
        "standard-1" => 4096,
        "standard-2" => 6144,
        "standard-3" => 8192,
        "standard-4" => 12288,
        other => panic!("unknown instance type {other}"),
    };
    assert!(memory_mib >= 2 * 929, "{memory_mib} MiB");
}

/// Runs `wrangler` with `args` from the repository's root, offline, within two minutes.
fn wrangler(args: &[String]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::NamedTempFile::new().expect("a temporary file");
    let output = || out.reopen().expect("the temporary file");
    let mut child = std::process::Command::new(root.join("node_modules/.bin/wrangler"))
        .args(args)
        .current_dir(&root)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true")
        .stdin(std::process::Stdio::null())
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("node_modules/.bin/wrangler (scripts/setup.sh installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wrangler's status") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(out.path()).expect("wrangler's output");
    (status.is_some_and(|s| s.success()), text)
}

/// docs/DEPLOY.md's commands, as far as wrangler runs without an account: every `wrangler
/// deploy` with `--dry-run` (Containers mode without building its image, which scripts/image.sh
/// builds in make test), every other wrangler command's flags against its `--help`.
#[test]
fn the_deploy_guide_s_wrangler_commands_run_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("edge/build/worker/shim.mjs").exists(),
        "the Worker is not built: make build-edge (make test builds it before this)"
    );
    let guide = std::fs::read_to_string(root.join("docs/DEPLOY.md")).unwrap();
    assert!(guide.contains("\n## Shortest paths"), "DEPLOY.md has its shortest paths");
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in guide.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && l.starts_with("wrangler ") => {
                // Without its comment and the file it reads.
                let l = l.split("  #").next().unwrap().split(" < ").next().unwrap().trim();
                let l = l.replace("$EDGE", "https://tailpdf.example.workers.dev");
                if !commands.contains(&l) {
                    commands.push(l);
                }
            }
            _ => {}
        }
    }
    let secrets = tempfile::tempdir().unwrap();
    let secrets_file = secrets.path().join("secrets.json");
    std::fs::write(&secrets_file, r#"{"INTERNAL_SECRET":"guide-test"}"#).unwrap();
    let (mut deploys, mut containers, mut others) = (0, 0, 0);
    for (n, command) in commands.iter().enumerate() {
        let mut args: Vec<String> = command.split_whitespace().skip(1).map(str::to_owned).collect();
        if args[0] == "deploy" {
            deploys += 1;
            for a in &mut args {
                if a == "secrets.json" {
                    *a = secrets_file.display().to_string();
                }
            }
            let outdir = secrets.path().join(format!("dist-{n}"));
            args.extend(["--dry-run".into(), "--outdir".into(), outdir.display().to_string()]);
            if command.contains("wrangler.containers.toml") {
                containers += 1;
                args.extend(["--containers-rollout".into(), "none".into()]);
            }
            let (ok, out) = wrangler(&args);
            assert!(ok && out.contains("--dry-run: exiting now."), "{command}:\n{out}");
            if command.contains("wrangler.containers.toml") {
                assert!(out.contains("env.RENDERERS (RendererContainer)"), "{command}:\n{out}");
            }
        } else {
            others += 1;
            let words: Vec<String> =
                args.iter().take_while(|a| !a.starts_with('-')).cloned().collect();
            let (ok, help) = wrangler(&[words, vec!["--help".into()]].concat());
            assert!(ok, "{command}: its --help failed:\n{help}");
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                assert!(help.contains(flag.as_str()), "{command}: {flag} is not in its --help");
            }
        }
    }
    assert!(deploys >= 4 && containers == 1, "{commands:?}");
    assert!(others >= 20, "{commands:?}");
}
