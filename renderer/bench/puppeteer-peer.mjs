// The benchmark's peer (run by tailpdf-bench): Puppeteer on the same Chromium, with the engine's
// network flags, the same HTML (its CSS made by the pinned Tailwind CLI) and print options, in
// two modes:
// - reused: one page per render in flight, opened once and reused (setContent + pdf): the
//   quickest way to use Puppeteer, with no isolation between documents;
// - fresh: a browser context of its own per render, opened and closed around it: what
//   isolation between documents costs with Puppeteer.
// Both modes run in one browser, alternating at each measurement, so that the machine's drift
// falls on both alike.
//
//   node puppeteer-peer.mjs <chromium> <html file> <renders> <concurrency,...> [mode,...]
// prints one JSON line: {"reused": {"p50_ms": .., "pdf_per_s": {"1": .., "2": ..}}, "fresh": ..}
import fs from "node:fs";
import puppeteer from "puppeteer-core";

const [chromium, htmlFile, rendersArg, concurrencyArg, modesArg] = process.argv.slice(2);
const html = fs.readFileSync(htmlFile, "utf8");
const renders = Number(rendersArg);
const levels = concurrencyArg.split(",").map(Number);
const modes = (modesArg || "reused,fresh").split(",");

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
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
  await run(mode, warmup, 1);
  const samples = [];
  for (let i = 0; i < renders; i++) {
    const t = performance.now();
    await renderOnce[mode](0);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  results[mode] = { p50_ms: samples[Math.floor((samples.length - 1) / 2)], pdf_per_s: {} };
}
for (const c of levels) {
  for (const mode of modes) {
    await run(mode, warmup, c);
    const t = performance.now();
    await run(mode, renders, c);
    results[mode].pdf_per_s[c] = renders / ((performance.now() - t) / 1000);
  }
}
await browser.close();
console.log(JSON.stringify(results));
