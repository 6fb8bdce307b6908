//! The Durable Object that owns one renderer container instance in Containers mode (binding
//! [`crate::containers::BINDING`], class `RendererContainer`, one object per instance named `renderer-{i}`). It
//! starts the instance when a call comes for a stopped one, waits for its `/readyz`, passes the
//! call to the renderer's port, and stops the instance once no call came for
//! `CONTAINER_SLEEP_AFTER_SECS`. What it decides is [`crate::containers`]; this is the glue.

use std::{cell::Cell, time::Duration};

use futures::future::{select, Either};
use tailpdf_shared::ApiError;
use worker::{
    durable_object, js_sys, wasm_bindgen::JsCast, wasm_bindgen::JsValue, Container, Delay,
    DurableObject, Env, Request, Response, Result, State,
};

use crate::{
    bindings::{config, error_response},
    containers::{
        alarm_after_request, ensure_ready, startup_env, Clock, Instance, BINDING, RENDERER_PORT,
    },
};

/// The renderer drains its work on SIGTERM (its `--grace-period`); Cloudflare sends SIGKILL
/// 15 minutes later at the latest.
const SIGTERM: i32 = 15;

/// `/readyz` answers at once, even while Chromium starts: longer is no answer.
const READYZ_DEADLINE: Duration = Duration::from_secs(2);

#[durable_object]
pub struct RendererContainer {
    state: State,
    env: Env,
    /// When the alarm that stops the instance fires, as last set or read (ms since the epoch).
    alarm_ms: Cell<Option<f64>>,
    /// Calls being passed on now: a batch group's can outlast `CONTAINER_SLEEP_AFTER_SECS`.
    in_flight: Cell<u32>,
}

impl DurableObject for RendererContainer {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, alarm_ms: Cell::new(None), in_flight: Cell::new(0) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let cfg = match config(&self.env) {
            Ok(cfg) => cfg,
            Err(e) => return error_response(&e),
        };
        let Some(pool) = cfg.containers.as_ref() else {
            return error_response(&ApiError::unavailable("RENDERER_CONTAINERS is not set.", 30));
        };
        let Some(container) = self.state.container() else {
            worker::console_error!("{BINDING}: the class has no [[containers]] entry");
            return error_response(&ApiError::unavailable(
                "No renderer instance is configured.",
                30,
            ));
        };
        self.keep_awake(pool.sleep_after).await?;
        let env = startup_env(&cfg.internal_secret, &pool.edge_url, pool.tabs);
        if let Err(e) =
            ensure_ready(&Live(&container), &WorkerClock, &env, pool.start_timeout).await
        {
            worker::console_warn!(
                "renderer instance not ready after {} ms: {}",
                e.waited_ms,
                e.last
            );
            // 503: the edge tries the next instance.
            return error_response(&ApiError::unavailable("The renderer instance is starting.", 2));
        }
        let port = container.get_tcp_port(RENDERER_PORT)?;
        self.in_flight.set(self.in_flight.get() + 1);
        let passed = port.fetch_request(req).await;
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        match passed {
            Ok(response) => Ok(response),
            Err(e) => {
                worker::console_warn!("renderer instance: the call failed: {e}");
                error_response(&ApiError::unavailable("The renderer instance did not answer.", 2))
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_ms.set(None);
        if self.in_flight.get() > 0 {
            // Still answering a call: look again a sleep period later.
            let after =
                config(&self.env).ok().and_then(|cfg| cfg.containers.map(|c| c.sleep_after));
            self.keep_awake(after.unwrap_or(Duration::from_secs(600))).await?;
            return Response::ok("busy");
        }
        if let Some(container) = self.state.container().filter(Container::running) {
            worker::console_log!("renderer instance idle: stopping it");
            container.signal(SIGTERM)?;
        }
        Response::ok("asleep")
    }
}

impl RendererContainer {
    /// Moves the alarm that stops the instance to `sleep_after` from now, when it must.
    async fn keep_awake(&self, sleep_after: Duration) -> Result<()> {
        let storage = self.state.storage();
        if self.alarm_ms.get().is_none() {
            self.alarm_ms.set(storage.get_alarm().await?.map(|ms| ms as f64));
        }
        let now = js_sys::Date::now();
        if let Some(at) = alarm_after_request(self.alarm_ms.get(), now, sleep_after) {
            storage.set_alarm((at - now) as i64).await?;
            self.alarm_ms.set(Some(at));
        }
        Ok(())
    }
}

/// The object's container, as [`Instance`].
struct Live<'a>(&'a Container);

impl Instance for Live<'_> {
    fn running(&self) -> bool {
        self.0.running()
    }

    /// workers-rs' `ContainerStartupOptions` keeps `env` in a JS `Map`, which the runtime
    /// reads as no variables at all (it takes a plain object): the options are built here.
    fn start(&self, env: &[(&'static str, String)]) -> std::result::Result<(), String> {
        let vars = js_sys::Object::new();
        for (name, value) in env {
            js_sys::Reflect::set(&vars, &JsValue::from_str(name), &JsValue::from_str(value))
                .map_err(|e| format!("{e:?}"))?;
        }
        let options = js_sys::Object::new();
        let set = |key: &str, value: &JsValue| {
            js_sys::Reflect::set(&options, &JsValue::from_str(key), value)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        };
        set("env", &vars)?;
        // Uploads go to the client's presigned URLs, and documents fetch their assets.
        set("enableInternet", &JsValue::TRUE)?;
        let start = js_sys::Reflect::get(self.0.as_ref(), &JsValue::from_str("start"))
            .map_err(|e| format!("{e:?}"))?
            .dyn_into::<js_sys::Function>()
            .map_err(|_| String::from("the container has no start()"))?;
        start.call1(self.0.as_ref(), &options).map(|_| ()).map_err(|e| format!("{e:?}"))
    }

    async fn readyz(&self) -> std::result::Result<u16, String> {
        let port = self.0.get_tcp_port(RENDERER_PORT).map_err(|e| e.to_string())?;
        let ask = port.fetch("http://container/readyz", None);
        let deadline = Delay::from(READYZ_DEADLINE);
        futures::pin_mut!(ask, deadline);
        match select(ask, deadline).await {
            Either::Left((Ok(response), _)) => Ok(response.status_code()),
            Either::Left((Err(e), _)) => Err(e.to_string()),
            Either::Right(_) => Err(format!("no answer within {READYZ_DEADLINE:?}")),
        }
    }
}

struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    async fn sleep(&self, d: Duration) {
        Delay::from(d).await;
    }
}
