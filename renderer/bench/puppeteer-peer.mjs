// The benchmark's peer (run by tailpdf-bench): Puppeteer on the same Chromium, with the engine's
// network flags, the same HTML (its CSS made by the pinned Tailwind CLI) and print options, in
// two modes:
// - reused: one page per render in flight, opened once and reused (setContent + pdf): the
//   quickest way to use Puppeteer, with no isolation between documents;
// - fresh: a browser context of its own per render, opened and closed around it: what
//   isolation between documents costs with Puppeteer.
// Both modes run in one browser, alternating at each measurement, so that the machine's drift
// falls on both alike (tailpdf-bench runs the peer at each level right after the engine, for
// the same reason).
//
//   node puppeteer-peer.mjs <chromium> <html file> <renders> <concurrency,...> <mode,...> [p50]
// prints one JSON line (p50_ms is null without "p50"):
// {"reused": {"p50_ms": .., "pdf_per_s": {"1": .., "2": ..},
// "cpu_ms_per_pdf": {"1": {"host": .., "browser": .., ..}, ..}}, "fresh": ..}: CPU time per PDF
// of node ("host") and of Chromium's processes by kind, read from /proc as tailpdf-bench reads
// the engine's (renderer/src/measure.rs).
import fs from "node:fs";
import puppeteer from "puppeteer-core";

const [chromium, htmlFile, rendersArg, concurrencyArg, modesArg, latencyArg] = process.argv.slice(2);
const html = fs.readFileSync(htmlFile, "utf8");
const renders = Number(rendersArg);
const levels = concurrencyArg.split(",").map(Number);
const modes = (modesArg || "reused,fresh").split(",");

const browser = await puppeteer.launch({
  executablePath: chromium,
  // Debian's chromium-headless-shell is the old headless mode's own binary.
  headless: chromium.includes("headless-shell") ? "shell" : true,
  // As root Chromium refuses its sandbox; the peer then runs without one (an advantage).
  args: [
    ...(process.getuid() === 0 ? ["--no-sandbox"] : []),
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND",
  ],
});

const options = { format: "A4", printBackground: true };

async function print(page) {
  await page.setContent(html, { waitUntil: "load" });
  const pdf = await page.pdf(options);
  if (pdf.length < 1000) throw new Error("no PDF");
}

// One page per render in flight, made before any is measured.
const pages = [];
for (let i = 0; i < Math.max(...levels); i++) pages.push(await browser.newPage());

const renderOnce = {
  reused: (slot) => print(pages[slot]),
  fresh: async () => {
    const context = await browser.createBrowserContext();
    try {
      await print(await context.newPage());
    } finally {
      await context.close();
    }
  },
};

// CPU seconds so far of this process and its descendants, by kind (see the heading).
function cpuByKind() {
  const stats = new Map();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      stats.set(Number(name), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // Ended meanwhile.
    }
  }
  const tree = [process.pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, s] of stats) if (s.ppid === tree[i]) tree.push(pid);
  }
  const byKind = {};
  for (const pid of tree) {
    let kind = "host";
    if (pid !== process.pid) {
      let type = null;
      try {
        // Chromium rewrites its command line into one string, split by spaces.
        const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split(/[\0 ]/);
        type = args.find((a) => a.startsWith("--type="))?.slice(7) ?? null;
      } catch {
        continue;
      }
      kind = type === null ? "browser" : type === "renderer" ? "renderer" : type === "gpu-process" ? "gpu" : "other";
    }
    byKind[kind] = (byKind[kind] ?? 0) + stats.get(pid).ticks / 100; // USER_HZ
  }
  return byKind;
}

async function run(mode, n, concurrency) {
  let next = 0;
  const worker = async (slot) => {
    while (next < n) {
      next += 1;
      await renderOnce[mode](slot);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, slot) => worker(slot)));
}

const warmup = Math.max(5, Math.floor(renders / 10));
const results = {};
for (const mode of modes) {
  results[mode] = { p50_ms: null, pdf_per_s: {}, cpu_ms_per_pdf: {} };
  if (latencyArg !== "p50") continue;
  await run(mode, warmup, 1);
  const samples = [];
  for (let i = 0; i < renders; i++) {
    const t = performance.now();
    await renderOnce[mode](0);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  results[mode].p50_ms = samples[Math.floor((samples.length - 1) / 2)];
}
for (const c of levels) {
  for (const mode of modes) {
    await run(mode, warmup, c);
    const before = cpuByKind();
    const t = performance.now();
    await run(mode, renders, c);
    results[mode].pdf_per_s[c] = renders / ((performance.now() - t) / 1000);
    const after = cpuByKind();
    results[mode].cpu_ms_per_pdf[c] = Object.fromEntries(
      Object.entries(after).map(([k, v]) => [k, ((v - (before[k] ?? 0)) * 1000) / renders]),
    );
  }
}
await browser.close();
console.log(JSON.stringify(results));
