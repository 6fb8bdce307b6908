// The page side of tailpdf's Tailwind compiler: a pool of workers, each running the compiler
// bundle (assets/tailwind-compiler.js), so that one document's CSS never waits for another's,
// and a generation that overruns its deadline is stopped by terminating its worker, which is
// replaced at once. The page's own thread only hands requests out, so it always answers.
//
// __tailpdfCompilers.start(source, size)
// __tailpdfCompilers.css(candidates, configJson, timeoutMs, maxChars)
//   -> Promise<{css} | {error: "config" | "too_large" | "timeout" | "crashed", message}>
// __tailpdfCompilers.warmUp(timeoutMs) -> Promise<number of workers that answered>
// __tailpdfCompilers.stats() -> {size, idle, waiting, replaced, warm}
(() => {
  let url = null;
  let size = 0;
  let seq = 0;
  let replaced = 0;
  const idle = [];
  const waiting = [];
  // Workers that have answered once: their bundle is loaded and compiled.
  const warm = new WeakSet();

  const spawn = () => new Worker(url);
  const release = (worker) => {
    const next = waiting.shift();
    if (next) next(worker);
    else idle.push(worker);
  };
  const acquire = () =>
    idle.length ? Promise.resolve(idle.pop()) : new Promise((resolve) => waiting.push(resolve));

  async function css(candidates, config, timeoutMs, maxChars) {
    const worker = await acquire();
    const id = ++seq;
    return new Promise((resolve) => {
      const done = (answer, healthy) => {
        clearTimeout(timer);
        worker.removeEventListener("message", onMessage);
        worker.removeEventListener("error", onError);
        if (healthy) {
          warm.add(worker);
          release(worker);
        } else {
          worker.terminate();
          replaced += 1;
          release(spawn());
        }
        resolve(answer);
      };
      const onMessage = ({ data }) => {
        if (data.id !== id) return;
        done(data.error ? { error: data.error, message: data.message || "" } : { css: data.css }, true);
      };
      const onError = (e) => done({ error: "crashed", message: String(e.message || "worker error") }, false);
      const timer = setTimeout(() => done({ error: "timeout", message: "" }, false), timeoutMs);
      worker.addEventListener("message", onMessage);
      worker.addEventListener("error", onError);
      worker.postMessage({ id, candidates, config, maxChars });
    });
  }

  function start(source, workers) {
    url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    size = workers;
    for (let i = 0; i < workers; i++) idle.push(spawn());
    return size;
  }

  // Every worker generates a little CSS now, at the same time (each call takes an idle worker
  // at once), so that loading the bundle and the first generation are not a render's.
  async function warmUp(timeoutMs) {
    const all = Array.from({ length: size }, () => css(["flex", "p-4", "text-sm"], "", timeoutMs, 1 << 24));
    return (await Promise.all(all)).filter((answer) => answer.css !== undefined).length;
  }

  const stats = () => ({
    size,
    idle: idle.length,
    waiting: waiting.length,
    replaced,
    warm: idle.filter((w) => warm.has(w)).length,
  });
  globalThis.__tailpdfCompilers = { start, css, warmUp, stats };
})();
