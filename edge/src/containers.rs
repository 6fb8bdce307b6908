//! Cloudflare Containers mode: the renderers are a fixed pool of container instances beside
//! the Worker (`RENDERER_CONTAINERS` of them), each owned by the Durable Object of class
//! `RendererContainer` named `renderer-{i}` (the glue is `container_class`). Calls reach an
//! instance through its object, addressed by an origin of the reserved `.invalid` domain
//! ([`origins`]), so that the rest of the edge treats the pool as any list of renderers:
//! [`crate::renderers`] spreads the calls and a busy or silent instance is skipped for the
//! next.
//!
//! What is decided here, natively: the pool's addresses, what an instance is started with,
//! waiting for its `/readyz`, and when an idle instance is put to sleep.

use std::time::Duration;

/// The domain of the pool's origins: `.invalid` never resolves (RFC 2606), so a call that
/// somehow skipped the objects goes nowhere.
const DOMAIN: &str = "containers.tailpdf.invalid";

/// The binding of the instances' objects (class `RendererContainer`) in the wrangler
/// configuration.
pub const BINDING: &str = "RENDERERS";

/// The port the renderer listens on in its image (`TAILPDF_LISTEN=0.0.0.0:3000`).
pub const RENDERER_PORT: u16 = 3000;

/// The pool's origins, one per instance, in [`crate::renderers`]' list form.
pub fn origins(instances: u32) -> Vec<String> {
    (0..instances).map(|i| format!("http://renderer-{i}.{DOMAIN}")).collect()
}

/// The object's name for a call to `url`, when `url` is one of the pool's.
pub fn instance_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    let name = host.strip_suffix(DOMAIN)?.strip_suffix('.')?;
    let number = name.strip_prefix("renderer-")?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// What an instance's renderer is started with: it reports to the edge over the Worker's
/// public URL, signs with the edge's secret, and renders `tabs` documents at once (the
/// instance's share of a CPU would make the renderer's own default one). Everything else is
/// the image's default.
pub fn startup_env(
    internal_secret: &str,
    edge_url: &str,
    tabs: u32,
) -> Vec<(&'static str, String)> {
    vec![
        ("TAILPDF_EDGE_URL", edge_url.to_owned()),
        ("TAILPDF_INTERNAL_SECRET", internal_secret.to_owned()),
        ("TAILPDF_LISTEN", format!("0.0.0.0:{RENDERER_PORT}")),
        ("TAILPDF_TABS", tabs.to_string()),
    ]
}

/// A container instance, as its object sees it (workers-rs' `Container`, or a stand-in).
#[allow(async_fn_in_trait)]
pub trait Instance {
    fn running(&self) -> bool;
    fn start(&self, env: &[(&'static str, String)]) -> Result<(), String>;
    /// The status of `GET /readyz` on the renderer's port, or why there was no answer (the
    /// port not listening yet, the process gone).
    async fn readyz(&self) -> Result<u16, String>;
}

/// Time, for waiting (the Worker's clock, or a test's).
#[allow(async_fn_in_trait)]
pub trait Clock {
    fn now_ms(&self) -> f64;
    async fn sleep(&self, d: Duration);
}

/// How an instance became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// It was running and ready.
    Already,
    /// It was started (or started again) by this call.
    Started,
}

/// Why an instance did not become ready in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub waited_ms: u64,
    pub last: String,
}

/// Starts with a quick question, then waits longer between them: a renderer that is warm
/// answers at once, one starting needs 1.5–3 s (BENCHMARKS.md, cold start).
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MOST: Duration = Duration::from_millis(500);

/// Makes sure `instance` runs a renderer that answers `/readyz` 200, starting it (again, if it
/// stopped while waited for) with `env`, within `timeout`.
pub async fn ensure_ready(
    instance: &impl Instance,
    clock: &impl Clock,
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Result<Ready, NotReady> {
    let began = clock.now_ms();
    let mut ready = Ready::Already;
    let mut pause = POLL_FIRST;
    let mut last = String::from("not asked yet");
    loop {
        if !instance.running() {
            ready = Ready::Started;
            if let Err(e) = instance.start(env) {
                last = format!("start: {e}");
            }
        }
        if instance.running() {
            match instance.readyz().await {
                Ok(200) => return Ok(ready),
                Ok(status) => last = format!("/readyz answered {status}"),
                Err(e) => last = e,
            }
        }
        let waited = clock.now_ms() - began;
        let left = timeout.as_millis() as f64 - waited;
        if left <= 0.0 {
            return Err(NotReady { waited_ms: waited.max(0.0) as u64, last });
        }
        clock.sleep(pause.min(Duration::from_millis(left as u64))).await;
        pause = (pause * 2).min(POLL_MOST);
    }
}

/// Moving the alarm costs a storage write: a request moves it only when it would fire more
/// than this much too early.
const ALARM_SLACK: Duration = Duration::from_secs(30);

/// When the object's alarm should be set after a request at `now_ms`, if it must move: an
/// instance sleeps once no request came for `sleep_after` (give or take [`ALARM_SLACK`]).
/// A job taken in push mode keeps its instance awake by the edge's questions about it (every
/// `PUSH_CHECK_SECS`), which must come more often than `sleep_after`.
pub fn alarm_after_request(
    alarm_ms: Option<f64>,
    now_ms: f64,
    sleep_after: Duration,
) -> Option<f64> {
    let wanted = now_ms + sleep_after.as_millis() as f64;
    match alarm_ms {
        Some(at) if at >= wanted - ALARM_SLACK.as_millis() as f64 => None,
        _ => Some(wanted),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    #[test]
    fn the_pool_s_origins_name_their_objects_and_nothing_else_does() {
        let pool = origins(3);
        assert_eq!(pool.len(), 3);
        let names: Vec<_> = pool.iter().map(|o| instance_of(o).unwrap()).collect();
        assert_eq!(names, ["renderer-0", "renderer-1", "renderer-2"]);
        assert_eq!(instance_of(&format!("{}/jobs/take", pool[1])), Some("renderer-1"));
        for other in [
            "https://renderer-0.containers.tailpdf.invalid/jobs/take",
            "http://renderer-0.containers.tailpdf.invalid.example.com/",
            "http://renderer-.containers.tailpdf.invalid/",
            "http://renderer-x.containers.tailpdf.invalid/",
            "http://evil.renderer-0.containers.tailpdf.invalid/",
            "http://127.0.0.1:3000/jobs/take",
            "http://renderer-0/",
        ] {
            assert_eq!(instance_of(other), None, "{other}");
        }
        assert!(origins(0).is_empty());
    }

    #[test]
    fn an_instance_knows_the_edge_and_the_secret() {
        let env = startup_env("s3cret", "https://tailpdf.example.workers.dev", 2);
        let get = |k: &str| env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.as_str());
        assert_eq!(get("TAILPDF_EDGE_URL"), Some("https://tailpdf.example.workers.dev"));
        assert_eq!(get("TAILPDF_INTERNAL_SECRET"), Some("s3cret"));
        assert_eq!(get("TAILPDF_LISTEN"), Some("0.0.0.0:3000"));
        assert_eq!(get("TAILPDF_TABS"), Some("2"));
    }

    /// A stand-in instance: it runs once started, listens after `listens_after_ms`, answers
    /// 503 until `ready_after_ms`, and dies at `dies_at_ms` if set.
    struct StandIn<'c> {
        clock: &'c TestClock,
        started_at: Cell<Option<f64>>,
        starts: Cell<u32>,
        listens_after_ms: f64,
        ready_after_ms: f64,
        dies_at_ms: Cell<Option<f64>>,
        refuses_start: bool,
        env: RefCell<Vec<(&'static str, String)>>,
    }

    impl<'c> StandIn<'c> {
        fn new(clock: &'c TestClock, listens_after_ms: f64, ready_after_ms: f64) -> Self {
            Self {
                clock,
                started_at: Cell::new(None),
                starts: Cell::new(0),
                listens_after_ms,
                ready_after_ms,
                dies_at_ms: Cell::new(None),
                refuses_start: false,
                env: RefCell::new(Vec::new()),
            }
        }

        fn up_for(&self) -> Option<f64> {
            let now = self.clock.now_ms();
            if self.dies_at_ms.get().is_some_and(|at| now >= at) {
                self.started_at.set(None);
                self.dies_at_ms.set(None);
            }
            self.started_at.get().map(|at| now - at)
        }
    }

    impl Instance for StandIn<'_> {
        fn running(&self) -> bool {
            self.up_for().is_some()
        }
        fn start(&self, env: &[(&'static str, String)]) -> Result<(), String> {
            if self.refuses_start {
                return Err(String::from("no room for the instance"));
            }
            assert!(self.up_for().is_none(), "started while running");
            self.starts.set(self.starts.get() + 1);
            self.started_at.set(Some(self.clock.now_ms()));
            *self.env.borrow_mut() = env.to_vec();
            Ok(())
        }
        async fn readyz(&self) -> Result<u16, String> {
            match self.up_for() {
                None => Err(String::from("the container is not running")),
                Some(up) if up < self.listens_after_ms => {
                    Err(String::from("container port not found"))
                }
                Some(up) if up < self.ready_after_ms => Ok(503),
                Some(_) => Ok(200),
            }
        }
    }

    /// Time that passes only when slept through, so the tests are exact.
    struct TestClock(Cell<f64>);

    impl Clock for TestClock {
        fn now_ms(&self) -> f64 {
            self.0.get()
        }
        async fn sleep(&self, d: Duration) {
            self.0.set(self.0.get() + d.as_millis() as f64);
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    const ENV: fn() -> Vec<(&'static str, String)> = || startup_env("s", "https://edge", 2);

    #[test]
    fn a_stopped_instance_is_started_and_waited_for_until_ready() {
        let clock = TestClock(Cell::new(0.0));
        let instance = StandIn::new(&clock, 800.0, 2_500.0);
        let ready = block_on(ensure_ready(&instance, &clock, &ENV(), Duration::from_secs(60)));
        assert_eq!(ready, Ok(Ready::Started));
        assert_eq!(instance.starts.get(), 1);
        assert_eq!(*instance.env.borrow(), ENV());
        let waited = clock.now_ms();
        // Ready at 2.5 s, noticed within one poll (≤ 0.5 s) after.
        assert!((2_500.0..=3_000.0).contains(&waited), "{waited}");
        // Asked again: running and ready, no start, no wait.
        let again = block_on(ensure_ready(&instance, &clock, &ENV(), Duration::from_secs(60)));
        assert_eq!(again, Ok(Ready::Already));
        assert_eq!((instance.starts.get(), clock.now_ms()), (1, waited));
    }

    #[test]
    fn an_instance_that_dies_while_starting_is_started_again() {
        let clock = TestClock(Cell::new(0.0));
        let instance = StandIn::new(&clock, 500.0, 1_000.0);
        instance.dies_at_ms.set(Some(700.0));
        let ready = block_on(ensure_ready(&instance, &clock, &ENV(), Duration::from_secs(60)));
        assert_eq!(ready, Ok(Ready::Started));
        assert_eq!(instance.starts.get(), 2, "started again after it died");
    }

    #[test]
    fn one_that_never_gets_ready_fails_at_the_deadline_saying_why() {
        let clock = TestClock(Cell::new(0.0));
        let instance = StandIn::new(&clock, 500.0, f64::INFINITY);
        let e =
            block_on(ensure_ready(&instance, &clock, &ENV(), Duration::from_secs(10))).unwrap_err();
        assert_eq!(e.waited_ms, 10_000, "at the deadline, not later");
        assert_eq!(e.last, "/readyz answered 503");
        let clock = TestClock(Cell::new(0.0));
        let refused = StandIn { refuses_start: true, ..StandIn::new(&clock, 0.0, 0.0) };
        let e =
            block_on(ensure_ready(&refused, &clock, &ENV(), Duration::from_secs(3))).unwrap_err();
        assert_eq!(e.last, "start: no room for the instance");
        assert_eq!(e.waited_ms, 3_000);
    }

    #[test]
    fn an_instance_sleeps_after_a_quiet_spell_and_requests_rarely_move_the_alarm() {
        let after = Duration::from_secs(600);
        assert_eq!(alarm_after_request(None, 1_000.0, after), Some(601_000.0));
        // A request 10 s later: the alarm would fire 10 s early, within the slack.
        assert_eq!(alarm_after_request(Some(601_000.0), 11_000.0, after), None);
        // 40 s later: it moves.
        assert_eq!(alarm_after_request(Some(601_000.0), 41_000.0, after), Some(641_000.0));
        // An alarm further out than needed (a longer setting before) stays.
        assert_eq!(alarm_after_request(Some(2_000_000.0), 41_000.0, after), None);
    }
}
