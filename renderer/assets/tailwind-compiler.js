// The Tailwind CSS v4 compiler for tailpdf's compiler page. Bundled at build time by esbuild
// (renderer/build.rs) from the pinned `tailwindcss` npm package, with its stylesheet inlined,
// and loaded into a long-lived page of the renderer's Chromium: no Node and no network at
// render time.
//
// globalThis.__tailpdfTailwind.css(candidates: string[], configJson: string) -> Promise<string>
//   CSS for exactly `candidates`, identical to the Tailwind CLI's. `configJson` is a
//   Tailwind v3-style config object as JSON text, or "" for none.
//
// The bundle runs in the workers of the compiler page's pool (assets/compiler-pool.js), one
// request at a time per worker: {id, candidates, config, maxChars} in, {id, css} or
// {id, error: "config" | "too_large", message} out.
import { compile } from "tailwindcss";
import indexCss from "tailwindcss/index.css";

const CONFIG_ID = "./tailwind.config.js";
const STYLESHEETS = new Set(["tailwindcss", "tailwindcss/index.css", "tailwindcss/index"]);
// How many configs keep a ready compiler (in each worker); more configs compile on demand.
const READY_CONFIGS = 4;

function fresh(configJson) {
  const config = configJson ? JSON.parse(configJson) : null;
  const input = config
    ? `@import "tailwindcss";\n@config "${CONFIG_ID}";\n`
    : `@import "tailwindcss";\n`;
  return compile(input, {
    base: "/",
    async loadStylesheet(id) {
      if (!STYLESHEETS.has(id)) throw new Error(`stylesheet '${id}' is not available`);
      return { path: "/node_modules/tailwindcss/index.css", base: "/node_modules/tailwindcss", content: indexCss };
    },
    async loadModule(id, _base, hint) {
      if (hint === "config" && id === CONFIG_ID && config) {
        return { path: "/tailwind.config.js", base: "/", module: config };
      }
      throw new Error(`plugins and modules are not available ('${id}')`);
    },
  });
}

// build() accumulates every candidate it has seen, so each call needs a compiler that has
// never built. compile() is the expensive half; keep one ready per recent config, made after
// the answer has gone out.
const ready = new Map();

function prepare(configJson) {
  const next = fresh(configJson);
  next.catch(() => {}); // a bad config fails the call that uses it, not this background one
  ready.delete(configJson);
  ready.set(configJson, next);
  while (ready.size > READY_CONFIGS) ready.delete(ready.keys().next().value);
}

async function css(candidates, configJson) {
  const key = configJson || "";
  const pending = ready.get(key);
  ready.delete(key);
  const compiler = await (pending ?? fresh(key));
  setTimeout(() => prepare(key), 0);
  return compiler.build(Array.from(candidates, String));
}

globalThis.__tailpdfTailwind = { css, prepare };

if (typeof WorkerGlobalScope !== "undefined" && globalThis instanceof WorkerGlobalScope) {
  prepare("");
  self.onmessage = async ({ data: { id, candidates, config, maxChars } }) => {
    let answer;
    try {
      const out = await css(candidates, config);
      answer = out.length > maxChars ? { id, error: "too_large", message: String(out.length) } : { id, css: out };
    } catch (e) {
      // The compiler only throws on what the request gave it: the config.
      answer = { id, error: "config", message: String((e && e.message) || e) };
    }
    self.postMessage(answer);
  };
}
