#![allow(clippy::unwrap_used)] // a panic is how a test fails
//! `docker/` and `deploy/kubernetes/` checked without Docker or a cluster (there may be
//! neither): the Dockerfile, compose.yaml and the Kubernetes manifests must agree with the
//! renderer binary (its bin, subcommands, flags, `TAILPDF_*` variables, defaults and the
//! metrics it serves), with the pinned versions (`rust-toolchain.toml`, `scripts/versions.env`,
//! `package.json`) and with `docs/DESIGN.md`'s local-stack table. Whether the image builds is
//! not checked here.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// --- the Dockerfile -----------------------------------------------------------------------------

#[derive(Debug)]
struct Instruction {
    /// Upper case: `RUN`, `COPY`, ...
    cmd: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    image: String,
    name: String,
    body: Vec<Instruction>,
}

impl Stage {
    fn all(&self, cmd: &str) -> impl Iterator<Item = &str> + '_ {
        let cmd = cmd.to_owned();
        self.body.iter().filter(move |i| i.cmd == cmd).map(|i| i.args.as_str())
    }

    /// The last instruction `cmd` (the one in effect).
    fn last(&self, cmd: &str) -> &str {
        self.all(cmd).last().unwrap_or_else(|| panic!("stage {} has no {cmd}", self.name))
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.all("ENV").flat_map(key_values).collect()
    }

    fn runs(&self) -> String {
        self.all("RUN").collect::<Vec<_>>().join("\n")
    }
}

struct Dockerfile {
    stages: Vec<Stage>,
    /// `ARG`s before the first `FROM` and in stages, with their defaults.
    args: BTreeMap<String, String>,
}

impl Dockerfile {
    fn load() -> Self {
        let text = read("docker/Dockerfile");
        let mut stages: Vec<Stage> = Vec::new();
        let mut args = BTreeMap::new();
        for line in logical_lines(&text) {
            let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let cmd = cmd.to_ascii_uppercase();
            let rest = rest.trim().to_owned();
            if cmd == "ARG" {
                args.extend(key_values(&rest));
                if stages.is_empty() {
                    continue; // a global ARG, for FROM lines
                }
            }
            if cmd == "FROM" {
                let words: Vec<&str> =
                    rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                let name = match words.as_slice() {
                    [_, kw, name] if kw.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    [_] => String::new(),
                    _ => panic!("cannot read FROM {rest}"),
                };
                stages.push(Stage { image: words[0].to_owned(), name, body: Vec::new() });
            } else {
                let stage = stages.last_mut().unwrap_or_else(|| panic!("{cmd} before FROM"));
                stage.body.push(Instruction { cmd, args: rest });
            }
        }
        Self { stages, args }
    }

    fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("the Dockerfile has no stage {name}"))
    }

    /// The stage `name` stands for by default: itself, or, for a stage that is only
    /// `FROM ${ARG}`, the stage the ARG's default names.
    fn resolved(&self, name: &str) -> &Stage {
        let stage = self.stage(name);
        match stage.image.strip_prefix("${").and_then(|a| a.strip_suffix('}')) {
            Some(arg) if stage.body.is_empty() => self.resolved(&self.args[arg]),
            _ => stage,
        }
    }

    /// The image `docker build` makes without `--target`.
    fn runtime(&self) -> &Stage {
        self.stages.last().unwrap()
    }
}

/// Instructions with their continuation lines joined, comments dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current).trim().to_owned());
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends inside a continued line");
    out.retain(|l| !l.is_empty());
    out
}

/// `A=1 B="two"` (ENV, ARG); a bare `NAME` (ARG without default) maps to "".
fn key_values(args: &str) -> Vec<(String, String)> {
    args.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.trim_matches('"').to_owned())
        })
        .collect()
}

/// The exec (JSON) form, which ENTRYPOINT and CMD must use so that tini gets the signals.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args} is not the JSON exec form: {e}"))
}

/// `--name=value` options at the start of `args`, and what follows them.
fn options(args: &str) -> (BTreeMap<String, String>, String) {
    let mut opts = BTreeMap::new();
    let mut rest = args.trim();
    while let Some(opt) = rest.strip_prefix("--") {
        let (word, tail) = opt.split_once(char::is_whitespace).unwrap_or((opt, ""));
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        opts.insert(k.to_owned(), v.to_owned());
        rest = tail.trim_start();
    }
    (opts, rest.to_owned())
}

/// Packages of the stage's `apt-get install`.
fn apt_packages(stage: &Stage) -> BTreeSet<String> {
    let runs = stage.runs();
    let words: Vec<&str> = runs.split_whitespace().collect();
    let start = words
        .windows(2)
        .position(|w| w[0] == "apt-get" && w[1] == "install")
        .unwrap_or_else(|| panic!("stage {} has no apt-get install", stage.name));
    words[start + 2..]
        .iter()
        .take_while(|w| **w != "&&")
        .filter(|w| !w.starts_with('-'))
        .map(|w| (*w).to_owned())
        .collect()
}

// --- the renderer's own description of itself -------------------------------------------------

fn renderer_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).map_or_else(
        || root().join("target"),
        |t| if t.is_absolute() { t } else { root().join(t) },
    );
    let bin = target.join("debug/tailpdf-renderer");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tailpdf-renderer` (make test does)",
        bin.display()
    );
    bin
}

fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(renderer_binary());
    cmd.args(args).arg("--help");
    // Set variables would show up in the help as values; the defaults are wanted.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TAILPDF_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "tailpdf-renderer {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[derive(Debug, Default)]
struct Flag {
    env: Option<String>,
    default: Option<String>,
    values: Vec<String>,
}

/// `--flag` → its env variable, default and possible values, from clap's help.
fn flags(help: &str) -> BTreeMap<String, Flag> {
    let mut flags: BTreeMap<String, Flag> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent > 0 && indent <= 6 && trimmed.starts_with('-') {
            let long = trimmed
                .split(|c: char| c.is_whitespace() || c == ',')
                .find(|w| w.starts_with("--"))
                .map(|w| w.trim_start_matches("--").to_owned());
            if let Some(name) = &long {
                flags.entry(name.clone()).or_default();
            }
            current = long;
        }
        let Some(flag) = current.as_ref().and_then(|n| flags.get_mut(n)) else { continue };
        if let Some(env) = bracket(line, "[env: ") {
            flag.env = Some(env.split('=').next().unwrap().to_owned());
        }
        if let Some(default) = bracket(line, "[default: ") {
            flag.default = Some(default);
        }
        if let Some(values) = bracket(line, "[possible values: ") {
            flag.values.extend(values.split(", ").map(str::to_owned));
        }
        // Long help lists values as `- name: text`.
        if let Some(item) = trimmed.strip_prefix("- ") {
            if let Some((value, _)) = item.split_once(':') {
                flag.values.push(value.to_owned());
            }
        }
    }
    flags
}

fn bracket(line: &str, open: &str) -> Option<String> {
    let start = line.find(open)? + open.len();
    let end = line[start..].find(']')? + start;
    Some(line[start..end].to_owned())
}

fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// `serve`'s flags by env variable. `serve` takes every flag (engine and global ones too).
fn serve_env() -> BTreeMap<String, (String, Flag)> {
    flags(&help(&["serve"]))
        .into_iter()
        .filter_map(|(name, flag)| Some((flag.env.clone()?, (name, flag))))
        .collect()
}

// --- pins and docs ------------------------------------------------------------------------------

fn versions_env(key: &str) -> String {
    read("scripts/versions.env")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("scripts/versions.env has no {key}"))
        .trim_matches('"')
        .to_owned()
}

fn toolchain_channel() -> String {
    read("rust-toolchain.toml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .map(|v| v.trim_start_matches([' ', '=']).trim().trim_matches('"').to_owned())
        .unwrap()
}

/// `docs/DESIGN.md`'s local-stack table: first cell (the part) → the other cells.
fn local_stack() -> BTreeMap<String, Vec<String>> {
    let design = read("docs/DESIGN.md");
    let table: Vec<&str> = design
        .lines()
        .skip_while(|l| !l.starts_with("## Local stack"))
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and rule
        .collect();
    assert!(!table.is_empty(), "docs/DESIGN.md has no local-stack table");
    table
        .iter()
        .map(|row| {
            let mut cells = row.trim_matches('|').split('|').map(|c| c.trim().to_owned());
            (cells.next().unwrap(), cells.collect())
        })
        .collect()
}

/// The row whose part starts with `prefix`: [address, notes].
fn stack_row(prefix: &str) -> Vec<String> {
    local_stack()
        .into_iter()
        .find_map(|(part, cells)| part.starts_with(prefix).then_some(cells))
        .unwrap_or_else(|| panic!("docs/DESIGN.md's local-stack table has no row {prefix}"))
}

/// `http://host:port` → (host, port).
fn host_port(url: &str) -> (String, u16) {
    let url = url.trim_matches('`');
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap_or_else(|| panic!("{url} has no port"));
    (host.to_owned(), port.parse().unwrap())
}

/// The words in backticks of a table cell, after `label` (e.g. "access key `x`" → x).
fn ticked_after(cell: &str, label: &str) -> String {
    let at = cell.find(label).unwrap_or_else(|| panic!("{cell:?} has no {label:?}")) + label.len();
    cell[at..].split('`').nth(1).unwrap().to_owned()
}

/// `30s`, `1m30s`, `500ms` (compose and the renderer's durations).
fn duration(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().unwrap_or_else(|_| panic!("{s:?} is not a duration"));
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" | "" => Duration::from_secs(n),
            "m" => Duration::from_secs(60 * n),
            "h" => Duration::from_secs(3600 * n),
            u => panic!("{s:?}: unknown unit {u:?}"),
        };
        rest = &rest[unit..];
    }
    total
}

// --- compose ------------------------------------------------------------------------------------

fn compose() -> Value {
    serde_norway::from_str(&read("docker/compose.yaml")).unwrap()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"].get(name).unwrap_or_else(|| panic!("compose.yaml has no service {name}"))
}

/// A scalar as compose reads it with nothing set in its environment: `${NAME:-default}` is
/// the default.
fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => with_defaults(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("{other:?} is not a scalar"),
    }
}

fn with_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').unwrap_or_else(|| panic!("unclosed ${{ in {text}")) + at;
        let inner = &rest[at + 2..end];
        out.push_str(inner.split_once(":-").map_or("", |(_, default)| default));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn list(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(str_of).collect()).unwrap_or_default()
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m.iter().map(|(k, v)| (str_of(k), str_of(v))).collect(),
        Value::Sequence(_) => list(&service["environment"])
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The service whose network namespace `name` uses (itself unless `network_mode: service:x`).
fn network_owner<'a>(compose: &'a Value, name: &'a str) -> &'a str {
    match service(compose, name)["network_mode"].as_str() {
        Some(mode) => mode.strip_prefix("service:").unwrap_or_else(|| panic!("{name}: {mode}")),
        None => name,
    }
}

/// Published ports reaching `name`: container port → (host ip, host port).
fn published(compose: &Value, name: &str) -> BTreeMap<u16, (String, u16)> {
    let owner = network_owner(compose, name);
    list(&service(compose, owner)["ports"])
        .iter()
        .map(|spec| {
            let parts: Vec<&str> = spec.split(':').collect();
            let (ip, host, container) = match parts.as_slice() {
                [ip, host, container] => ((*ip).to_owned(), *host, *container),
                [host, container] => ("0.0.0.0".to_owned(), *host, *container),
                _ => panic!("cannot read the port {spec}"),
            };
            (container.parse().unwrap(), (ip, host.parse().unwrap()))
        })
        .collect()
}

/// The value after `--flag` in an argument list.
fn arg_after(args: &[String], flag: &str) -> String {
    let at =
        args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{args:?} has no {flag}"));
    args[at + 1].clone()
}

// --- the checks ---------------------------------------------------------------------------------

#[test]
fn the_entrypoint_runs_the_renderer_built_by_the_builder_stage() {
    let df = Dockerfile::load();
    let runtime = df.runtime();
    assert_eq!(runtime.name, "renderer", "the renderer must be the default (last) stage");

    let entrypoint = exec_form(runtime.last("ENTRYPOINT"));
    let [tini, dashdash, binary] = entrypoint.as_slice() else {
        panic!("ENTRYPOINT should be [tini, --, the renderer], not {entrypoint:?}")
    };
    assert_eq!((tini.as_str(), dashdash.as_str()), ("/usr/bin/tini", "--"));
    assert!(apt_packages(runtime).contains("tini"), "tini is not installed");
    assert_eq!(binary, "/usr/local/bin/tailpdf-renderer");

    // The binary comes (by default) from the builder stage, which builds exactly that bin.
    let copy = runtime
        .all("COPY")
        .find(|c| c.ends_with(&format!(" {binary}")))
        .unwrap_or_else(|| panic!("no COPY puts {binary} in the image"));
    let (opts, paths) = options(copy);
    let builder = df.resolved(&opts["from"]);
    assert_eq!(builder.name, "builder");
    // The other way in (scripts/image.sh, make test) puts a prebuilt binary at the same path.
    let prebuilt = df.stage("prebuilt");
    assert_eq!(prebuilt.image, "scratch");
    assert_eq!(
        prebuilt.last("COPY"),
        format!("tailpdf-renderer {}", paths.split_whitespace().next().unwrap())
    );
    let source = paths.split_whitespace().next().unwrap();
    let runs = builder.runs();
    let build = runs
        .split("&&")
        .find(|c| c.contains("cargo build"))
        .unwrap_or_else(|| panic!("stage {} runs no cargo build", builder.name));
    let words: Vec<&str> = build.split_whitespace().collect();
    for w in [["-p", "tailpdf-renderer"], ["--bin", "tailpdf-renderer"]] {
        assert!(words.windows(2).any(|p| p == w), "{build} lacks {w:?}");
    }
    for w in ["--release", "--locked"] {
        assert!(words.contains(&w), "{build} lacks {w}");
    }
    assert!(
        runs.contains(&format!("target/release/tailpdf-renderer {source}")),
        "{} does not put target/release/tailpdf-renderer at {source}",
        builder.name
    );

    // ...and that bin is the renderer package's.
    let manifest = read("renderer/Cargo.toml");
    assert!(manifest.contains("[package]\nname = \"tailpdf-renderer\""));
    assert!(manifest.contains("[[bin]]\nname = \"tailpdf-renderer\"\npath = \"src/main.rs\""));
}

#[test]
fn the_command_and_its_flags_exist() {
    let df = Dockerfile::load();
    let cmd = exec_form(df.runtime().last("CMD"));
    let sub = cmd.first().expect("CMD names a subcommand");
    assert!(subcommands(&help(&[])).contains(sub), "tailpdf-renderer has no subcommand {sub}");
    assert_eq!(sub, "serve", "the image is the service");
    let known = flags(&help(&[sub]));
    for flag in cmd.iter().filter_map(|a| a.strip_prefix("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(known.contains_key(name), "`{sub}` has no flag --{name}");
    }
    let compose = compose();
    let renderer = service(&compose, "renderer");
    for key in ["command", "entrypoint"] {
        assert!(renderer[key].is_null(), "compose overrides the image's {key}; check it here");
    }
}

#[test]
fn every_tailpdf_variable_exists_and_takes_its_value() {
    let known = serve_env();
    let df = Dockerfile::load();
    let mut set: Vec<(String, String, &str)> =
        df.runtime().env().into_iter().map(|(k, v)| (k, v, "the Dockerfile")).collect();
    set.extend(
        environment(service(&compose(), "renderer"))
            .into_iter()
            .map(|(k, v)| (k, v, "compose.yaml")),
    );
    assert!(set.len() >= 6, "expected the image's and compose's settings, found {set:?}");
    for (name, value, place) in &set {
        let Some((flag, spec)) = known.get(name) else {
            panic!("{place} sets {name}, which `tailpdf-renderer serve` does not read")
        };
        if !spec.values.is_empty() {
            assert!(
                spec.values.contains(value),
                "{place}: {name}={value}, not one of {:?}",
                spec.values
            );
        }
        if flag.ends_with("-period") || flag.ends_with("-timeout") {
            duration(value);
        }
    }

    // Any TAILPDF_ name mentioned in docker/ (shell, YAML or prose) must be real too;
    // TAILPDF_LOG is the log filter, read by the binary rather than a flag.
    assert!(read("renderer/src/main.rs").contains("\"TAILPDF_LOG\""));
    for file in ["docker/Dockerfile", "docker/compose.yaml", "docker/README.md"] {
        let text = read(file);
        for name in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            // `TAILPDF_*` in prose is the family, not a name.
            if name.starts_with("TAILPDF_") && !["TAILPDF_", "TAILPDF_LOG"].contains(&name) {
                assert!(known.contains_key(name), "{file} mentions {name}, which does not exist");
            }
        }
    }
}

#[test]
fn one_port_everywhere_and_healthz() {
    let df = Dockerfile::load();
    let runtime = df.runtime();
    let env = runtime.env();
    let listen = &env["TAILPDF_LISTEN"];
    let (host, port) = listen.rsplit_once(':').unwrap();
    assert_eq!(host, "0.0.0.0", "inside a container the renderer must listen on every address");
    let port: u16 = port.parse().unwrap();

    let expose: Vec<u16> = runtime
        .all("EXPOSE")
        .flat_map(|e| e.split_whitespace())
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(expose, [port], "EXPOSE");

    let (opts, check) = options(runtime.last("HEALTHCHECK"));
    for o in ["interval", "timeout", "start-period"] {
        assert!(opts.contains_key(o), "HEALTHCHECK without --{o}");
    }
    // Through a shell, so that the port follows TAILPDF_LISTEN (e2e/tests/container.rs runs
    // the image on another port and its healthcheck).
    let check = exec_form(check.strip_prefix("CMD").expect("HEALTHCHECK CMD [...]").trim());
    assert_eq!(check[..2], ["/bin/sh", "-c"], "HEALTHCHECK CMD [\"/bin/sh\", \"-c\", ...]");
    let check: Vec<String> = check[2]
        .split_whitespace()
        .map(|w| w.trim_matches('"').replace("${TAILPDF_LISTEN##*:}", &port.to_string()))
        .collect();
    assert_eq!(check[0], "curl");
    assert!(apt_packages(runtime).contains("curl"), "the healthcheck's curl is not installed");
    assert!(
        check.iter().any(|a| a == "-f" || a.starts_with("-f")),
        "curl must fail on HTTP errors"
    );
    let url = check.iter().find(|a| a.starts_with("http://")).expect("a URL");
    assert_eq!(host_port(url), ("127.0.0.1".to_owned(), port), "healthcheck URL {url}");
    let path = url.split_once("://").unwrap().1;
    assert_eq!(&path[path.find('/').unwrap()..], "/healthz", "healthcheck URL {url}");
    assert!(
        read("renderer/src/service/http.rs").contains(".route(\"/healthz\""),
        "the renderer no longer serves /healthz"
    );

    let compose = compose();
    let ports = published(&compose, "renderer");
    assert!(ports.contains_key(&port), "compose publishes {ports:?}, not the renderer's {port}");
}

#[test]
fn runs_as_a_non_root_user_that_owns_the_font_cache() {
    let df = Dockerfile::load();
    let runtime = df.runtime();
    // Numeric (uid:gid), so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
    let (uid_gid, user_pos) = {
        let pos = runtime.body.iter().rposition(|i| i.cmd == "USER").unwrap();
        (runtime.body[pos].args.as_str(), pos)
    };
    let (uid, gid) = uid_gid.split_once(':').expect("USER uid:gid");
    assert!(uid.parse::<u32>().unwrap() > 0 && gid.parse::<u32>().unwrap() > 0, "{uid_gid}");
    let entry_pos = runtime.body.iter().rposition(|i| i.cmd == "ENTRYPOINT").unwrap();
    assert!(user_pos < entry_pos);
    let runs = runtime.runs();
    let useradd = runs.split("&&").find(|c| c.contains("useradd")).expect("useradd");
    let words: Vec<String> = useradd.split_whitespace().map(str::to_owned).collect();
    assert_eq!(arg_after(&words, "--uid"), uid, "useradd does not create uid {uid}");
    assert!(words.contains(&String::from("--user-group")), "the user's group has its uid");
    let user = words.last().unwrap().as_str();

    let cache = &runtime.env()["TAILPDF_FONT_CACHE_DIR"];
    assert!(
        runs.contains(&format!("-o {user} -g {user}")) && runs.contains(cache.as_str()),
        "{cache} must be created owned by {user}"
    );
    let volumes = list(&service(&compose(), "renderer")["volumes"]);
    assert!(
        volumes.iter().any(|v| v.split(':').nth(1) == Some(cache.as_str())),
        "compose mounts no volume on the font cache {cache}: {volumes:?}"
    );
}

#[test]
fn images_follow_the_pinned_toolchains() {
    let df = Dockerfile::load();
    let channel = toolchain_channel();
    let rust: Vec<&Stage> = df.stages.iter().filter(|s| s.image.starts_with("rust:")).collect();
    assert!(rust.len() >= 2, "the builder and s3s-fs stages use the rust image");
    for s in &rust {
        let tag = s.image.trim_start_matches("rust:");
        assert_eq!(
            tag.split('-').next().unwrap(),
            channel,
            "{} is not rust-toolchain.toml's",
            s.image
        );
    }
    assert_eq!(df.stage("builder").env()["RUSTUP_TOOLCHAIN"], channel);

    let node = df.stages.iter().find(|s| s.image.starts_with("node:")).expect("a node stage");
    let version = node.image.trim_start_matches("node:").split('-').next().unwrap();
    assert_eq!(version, versions_env("NODE_VERSION"), "{}", node.image);
    let package: serde_json::Value = serde_json::from_str(&read("package.json")).unwrap();
    let pinned = package["devDependencies"][versions_env("NODE_PACKAGE")].as_str().unwrap();
    assert_eq!(version.split('.').next(), pinned.split('.').next(), "Node major of package.json");
    assert!(node.runs().contains("npm ci"), "the node stage installs from package-lock.json");
    assert!(node
        .all("COPY")
        .any(|c| c.contains("package.json") && c.contains("package-lock.json")));

    // renderer/build.rs runs node_modules/.bin/esbuild from the workspace root.
    assert!(read("renderer/build.rs").contains("node_modules/.bin/esbuild"));
    let builder = df.stage("builder");
    let workdir = builder.last("WORKDIR");
    assert!(
        builder.all("COPY").any(|c| c.starts_with(&format!("--from={} ", node.name))
            && c.contains("/node_modules ./node_modules"))
            && builder.all("COPY").any(|c| c == ". ."),
        "the builder must have node_modules and the workspace in {workdir}"
    );

    let s3s = versions_env("S3S_FS_VERSION");
    assert_eq!(df.args["S3S_FS_VERSION"], s3s, "the Dockerfile's S3S_FS_VERSION");
    let install = df.stage("s3s-fs-builder").runs();
    for w in [
        "cargo install s3s-fs",
        "--version \"=${S3S_FS_VERSION}\"",
        "--features binary",
        "--locked",
    ] {
        assert!(install.contains(w), "the s3s-fs build lacks {w}");
    }
    let compose = compose();
    let s3 = service(&compose, "s3");
    assert_eq!(str_of(&s3["build"]["args"]["S3S_FS_VERSION"]), s3s, "compose's S3S_FS_VERSION");
    let image = str_of(&s3["image"]);
    assert_eq!(image.rsplit_once(':').unwrap().1, s3s, "compose's s3s-fs image tag");
}

#[test]
fn the_image_has_the_chromium_and_fonts_the_renderer_expects() {
    let df = Dockerfile::load();
    let runtime = df.runtime();
    let packages = apt_packages(runtime);
    // TAILPDF_CHROMIUM is the CHROMIUM build argument's, which the package it installs
    // (CHROMIUM_PACKAGE) provides: by default the renderer's default, the headless shell.
    let chromium = &runtime.env()["TAILPDF_CHROMIUM"];
    assert_eq!(chromium, "${CHROMIUM}", "TAILPDF_CHROMIUM follows the build argument");
    let (chromium, package) = (&df.args["CHROMIUM"], &df.args["CHROMIUM_PACKAGE"]);
    let default = flags(&help(&["serve"]))["chromium"].default.clone().unwrap();
    assert_eq!(chromium, &default, "the image's Chromium is not the renderer's default");
    assert!(packages.contains("\"$CHROMIUM_PACKAGE\""), "the image installs no Chromium");
    let owner = std::process::Command::new("dpkg").args(["-S", chromium]).output().unwrap();
    let owner = String::from_utf8_lossy(&owner.stdout);
    assert!(owner.starts_with(&format!("{package}: ")), "{chromium} is not {package}'s: {owner}");
    assert!(runtime.runs().contains("test -x \"$TAILPDF_CHROMIUM\""), "the build checks Chromium");
    // Everything setup.sh installs for rendering: the fonts, the image's Chromium, tini.
    let apt = versions_env("APT_PACKAGES");
    assert!(apt.split_whitespace().any(|p| p == package), "setup.sh does not install {package}");
    for p in apt.split_whitespace() {
        if p.starts_with("fonts-") || p == "tini" {
            assert!(packages.contains(p), "{p} is in scripts/versions.env but not in the image");
        }
    }
    assert!(packages.contains("ca-certificates"), "uploads and Google Fonts need CA roots");
    assert_eq!(runtime.last("STOPSIGNAL"), "SIGTERM");
    assert_eq!(runtime.env()["TAILPDF_LOG_FORMAT"], "json");
}

#[test]
fn compose_matches_the_local_stack_table() {
    let compose = compose();
    let df = Dockerfile::load();
    for name in ["renderer", "s3"] {
        let build = &service(&compose, name)["build"];
        assert_eq!(str_of(&build["context"]), "..", "{name} builds from the repository root");
        assert_eq!(str_of(&build["dockerfile"]), "docker/Dockerfile");
        df.stage(&str_of(&build["target"]));
    }

    // Published where the table says, for the host's tools (wrangler dev, curl, presign).
    let renderer = published(&compose, "renderer");
    let listen_port = host_port(&df.runtime().env()["TAILPDF_LISTEN"]).1;
    assert_eq!(
        (renderer[&listen_port].0.clone(), renderer[&listen_port].1),
        host_port(&stack_row("renderer")[0]),
        "renderer"
    );
    let s3 = service(&compose, "s3");
    let command = list(&s3["command"]);
    let s3_port: u16 = arg_after(&command, "--port").parse().unwrap();
    assert_eq!(arg_after(&command, "--host"), "0.0.0.0");
    let bucket_row = stack_row("S3-compatible bucket");
    let bucket = published(&compose, "s3");
    assert_eq!(
        (bucket[&s3_port].0.clone(), bucket[&s3_port].1),
        host_port(&bucket_row[0]),
        "bucket"
    );
    assert!(df.stage("s3s-fs").all("EXPOSE").any(|p| p == s3_port.to_string()));

    let credentials = stack_row("bucket credentials").swap_remove(0);
    assert_eq!(arg_after(&command, "--access-key"), ticked_after(&credentials, "access key"));
    assert_eq!(arg_after(&command, "--secret-key"), ticked_after(&credentials, "secret"));
    // The image's default command says the same, for `docker run` without compose.
    let default_cmd = exec_form(df.stage("s3s-fs").last("CMD"));
    assert_eq!(default_cmd, command, "the s3s-fs image's CMD and compose's command");
    let region = ticked_after(&credentials, "region");
    assert!(read("docker/README.md").contains(&format!("`{region}`")), "docker/README.md region");

    // The bucket directory exists in the image under the data root compose mounts.
    let data = command.last().unwrap();
    let name = ticked_after(&bucket_row[1], "bucket");
    assert!(df.stage("s3s-fs").runs().contains(&format!("{data}/{name}")), "no {data}/{name}");
    assert!(list(&s3["volumes"]).iter().any(|v| v.split(':').nth(1) == Some(data.as_str())));

    // The renderer reaches the host's `wrangler dev` on the table's edge port.
    let env = environment(service(&compose, "renderer"));
    let (edge_host, edge_port) = host_port(&env["TAILPDF_EDGE_URL"]);
    assert_eq!(edge_port, host_port(&stack_row("edge")[0]).1, "the edge's port");
    let owner = service(&compose, network_owner(&compose, "renderer"));
    assert!(
        list(&owner["extra_hosts"]).contains(&format!("{edge_host}:host-gateway")),
        "{edge_host} is not mapped to the host"
    );
    // The README's wrangler line points the edge back at the published renderer.
    assert!(
        read("docker/README.md")
            .contains(&format!("--var RENDERER_URL:{}", stack_row("renderer")[0])),
        "docker/README.md's wrangler dev command"
    );
}

/// s3s-fs as scripts/setup.sh installs it (the version the image builds).
fn s3s_fs_help() -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap();
    let bin = cargo_home.join("bin/s3s-fs");
    assert!(bin.exists(), "{} is missing: run `scripts/setup.sh cargo-tools`", bin.display());
    let out = Command::new(&bin).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn s3s_fs_takes_the_flags_compose_gives_it() {
    let known = flags(&s3s_fs_help());
    let compose = compose();
    for flag in
        list(&service(&compose, "s3")["command"]).iter().filter_map(|a| a.strip_prefix("--"))
    {
        assert!(known.contains_key(flag), "s3s-fs has no flag --{flag}");
    }
}

#[test]
fn compose_gives_jobs_time_to_drain() {
    let compose = compose();
    let renderer = service(&compose, "renderer");
    let grace_default = flags(&help(&["serve"]))["grace-period"].default.clone().unwrap();
    let grace = environment(renderer).get("TAILPDF_GRACE_PERIOD").cloned().unwrap_or(grace_default);
    let stop = duration(&str_of(&renderer["stop_grace_period"]));
    assert!(
        stop > duration(&grace),
        "stop_grace_period {stop:?} must exceed the grace period {grace}"
    );
    assert!(renderer["init"].is_null() || renderer["init"] == Value::Bool(false), "tini is PID 1");
    assert_eq!(str_of(&renderer["restart"]), "unless-stopped");
}

#[test]
fn the_build_context_leaves_out_builds_but_not_sources() {
    let ignore = read("docker/Dockerfile.dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for p in ["**/target", "node_modules", ".git", ".dev", "edge/build"] {
        assert!(patterns.contains(&p), "the build context should not carry {p}");
    }
    let needed = [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        "package.json",
        "package-lock.json",
        "shared/src",
        "renderer/src",
        "renderer/assets",
        "renderer/build.rs",
        "edge/Cargo.toml",
        "e2e/Cargo.toml",
    ];
    for path in needed {
        for p in &patterns {
            let hit = path == *p
                || path.starts_with(&format!("{p}/"))
                || (p.starts_with("*.") && path.ends_with(&p[1..]) && !path.contains('/'));
            assert!(!hit, "the ignore pattern {p} drops {path}, which the build needs");
        }
    }
}

#[test]
fn docker_readme_documents_the_sandbox_setting() {
    let sandbox = &flags(&help(&["serve"]))["sandbox"];
    assert_eq!(sandbox.env.as_deref(), Some("TAILPDF_SANDBOX"));
    let readme = read("docker/README.md");
    let documented: Vec<String> = readme
        .lines()
        .skip_while(|l| !l.starts_with("## Chromium's sandbox"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_owned())
        .collect();
    assert_eq!(documented, sandbox.values, "docker/README.md's --sandbox table");
    let default = sandbox.default.as_deref().unwrap();
    assert!(readme.contains(&format!("| `{default}` (default) |")), "the default is {default}");
}

// --- Kubernetes ---------------------------------------------------------------------------------

/// Every document of a manifest of `deploy/kubernetes/`, by kind.
fn manifests(file: &str) -> BTreeMap<String, Value> {
    let text = read(&format!("deploy/kubernetes/{file}"));
    // Documents split at their `---` lines.
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .filter(|doc| doc.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')))
        .map(|doc| {
            let doc: Value = serde_norway::from_str(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            (
                doc["kind"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: a document without kind"))
                    .to_owned(),
                doc,
            )
        })
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The renderer's Deployment: its variables are `serve`'s, its probes the renderer's own
/// (`/readyz` for readiness, `/healthz` for life) on the port it listens on, its user the
/// image's, its grace longer than the renderer's, its writable paths where the image writes.
#[test]
fn the_kubernetes_deployment_runs_the_renderer_as_it_is() {
    let docs = manifests("renderer.yaml");
    let serve = serve_env();
    let config = &docs["ConfigMap"]["data"];
    let deployment = &docs["Deployment"];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mut env: BTreeMap<String, String> = config
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (text(k).to_owned(), text(v).to_owned()))
        .collect();
    for e in container["env"].as_sequence().unwrap() {
        env.insert(text(&e["name"]).to_owned(), text(&e["value"]).to_owned());
    }
    for name in env.keys() {
        assert!(serve.contains_key(name), "{name} is no variable of `tailpdf-renderer serve`");
    }
    assert_eq!(env["TAILPDF_PULL"], "true");
    let refs: Vec<&str> = container["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["configMapRef"]["name"].as_str().or(r["secretRef"]["name"].as_str()))
        .collect();
    assert_eq!(refs, [text(&docs["ConfigMap"]["metadata"]["name"]), "tailpdf-renderer"]);

    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(env["TAILPDF_LISTEN"], format!("0.0.0.0:{port}"));
    let port_name = text(&container["ports"][0]["name"]);
    let probe = |kind: &str| {
        let get = &container[kind]["httpGet"];
        assert_eq!(text(&get["port"]), port_name, "{kind} probes another port");
        text(&get["path"]).to_owned()
    };
    assert_eq!(probe("readinessProbe"), "/readyz");
    assert_eq!(probe("livenessProbe"), "/healthz");
    assert_eq!(probe("startupProbe"), "/healthz");
    let service = &docs["Service"];
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);
    assert_eq!(text(&service["spec"]["ports"][0]["targetPort"]), port_name);

    // Jobs in flight finish within the grace period, then the rest are handed back (15 s).
    let grace = duration(env.get("TAILPDF_GRACE_PERIOD").map_or("30s", String::as_str));
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(Duration::from_secs(termination) >= grace + Duration::from_secs(15), "{termination}");

    let df = Dockerfile::load();
    let runtime = df.runtime();
    let user = runtime.body.iter().rev().find(|i| i.cmd == "USER").unwrap().args.clone();
    let (uid, gid) = user.split_once(':').unwrap();
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64().unwrap().to_string(), uid);
    assert_eq!(pod["securityContext"]["runAsGroup"].as_u64().unwrap().to_string(), gid);
    // A read-only root: the font cache and /tmp (Chromium's profile) are volumes.
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], Value::Bool(true));
    let mounts: BTreeSet<&str> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| text(&m["mountPath"]))
        .collect();
    let cache = runtime.env()["TAILPDF_FONT_CACHE_DIR"].clone();
    assert!(mounts.contains(cache.as_str()) && mounts.contains("/tmp"), "{mounts:?}");
}

/// The metric names of `tailpdf_` the autoscalers' manifests use, and what they scale.
fn autoscaler_metrics() -> BTreeSet<String> {
    let deployment = text(&manifests("renderer.yaml")["Deployment"]["metadata"]["name"]).to_owned();
    let keda = &manifests("keda.yaml")["ScaledObject"];
    assert_eq!(text(&keda["spec"]["scaleTargetRef"]["name"]), deployment);
    let hpa = &manifests("hpa.yaml")["HorizontalPodAutoscaler"];
    assert_eq!(text(&hpa["spec"]["scaleTargetRef"]["name"]), deployment);
    assert_eq!(text(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
    let mut names = BTreeSet::new();
    for trigger in keda["spec"]["triggers"].as_sequence().unwrap() {
        assert_eq!(text(&trigger["type"]), "prometheus");
        let query = text(&trigger["metadata"]["query"]);
        let mut rest = query;
        while let Some(at) = rest.find("tailpdf_") {
            let name: String =
                rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    for metric in hpa["spec"]["metrics"].as_sequence().unwrap() {
        let kind = text(&metric["type"]).to_ascii_lowercase();
        names.insert(text(&metric[kind.as_str()]["metric"]["name"]).to_owned());
    }
    names
}

/// The names the autoscalers scale on are the ones a renderer in pull mode serves at
/// `/metrics` (here against the Queues pull stand-in, whose answers carry the backlog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscalers_scale_on_metrics_the_renderer_serves() {
    let names = autoscaler_metrics();
    for wanted in ["tailpdf_queue_backlog_messages", "tailpdf_tabs_busy"] {
        assert!(names.contains(wanted), "the autoscalers do not use {wanted}: {names:?}");
    }
    let queue = tailpdf_e2e::queues::PullQueue::start(None).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache = tempfile::tempdir().unwrap();
    let mut renderer = Command::new(renderer_binary())
        .arg("serve")
        .env("TAILPDF_LISTEN", format!("127.0.0.1:{port}"))
        .env("TAILPDF_INTERNAL_SECRET", "kubernetes-test-secret")
        .env("TAILPDF_TABS", "1")
        .env("TAILPDF_FONT_CACHE_DIR", cache.path())
        .env("TAILPDF_PULL", "true")
        .env("TAILPDF_PULL_INTERVAL", "100ms")
        .env("TAILPDF_CF_API_BASE", &queue.api_base)
        .env("TAILPDF_CF_ACCOUNT_ID", tailpdf_e2e::queues::ACCOUNT_ID)
        .env("TAILPDF_CF_QUEUE_ID", tailpdf_e2e::queues::QUEUE_ID)
        .env("TAILPDF_CF_API_TOKEN", tailpdf_e2e::queues::API_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let started = std::time::Instant::now();
    let served = loop {
        assert!(started.elapsed() < Duration::from_secs(60), "no queue metrics within 60 s");
        let scrape = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await;
        if let Ok(r) = scrape.and_then(reqwest::Response::error_for_status) {
            let body = r.text().await.unwrap();
            if body.contains("tailpdf_queue_backlog_messages{") {
                break body;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(renderer.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = renderer.wait();
    let samples: BTreeSet<&str> = served
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &names {
        assert!(samples.contains(name.as_str()), "/metrics serves no {name}: {samples:?}");
    }
}
