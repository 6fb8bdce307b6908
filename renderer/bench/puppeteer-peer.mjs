// The benchmark's peer (run by tailpdf-bench): Puppeteer rendering each document in a browser
// context of its own, opened and closed around every render — what isolation between
// documents costs with Puppeteer. Same Chromium, the engine's network flags, the same HTML
// (its CSS ready-made) and print options as the engine's floor.
//
//   node puppeteer-peer.mjs <chromium> <html file> <renders> <concurrency,...>
// prints one JSON line: {"p50_ms": .., "pdf_per_s": {"1": .., "2": ..}}
import fs from "node:fs";
import puppeteer from "puppeteer-core";

const [chromium, htmlFile, rendersArg, concurrencyArg] = process.argv.slice(2);
const html = fs.readFileSync(htmlFile, "utf8");
const renders = Number(rendersArg);
const levels = concurrencyArg.split(",").map(Number);

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

async function renderOnce() {
  const context = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    await page.setContent(html, { waitUntil: "load" });
    const pdf = await page.pdf({ format: "A4", printBackground: true });
    if (pdf.length < 1000) throw new Error("no PDF");
  } finally {
    await context.close();
  }
}

async function run(n, concurrency) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next += 1;
      await renderOnce();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const warmup = Math.max(5, Math.floor(renders / 10));
await run(warmup, 1);
const samples = [];
for (let i = 0; i < renders; i++) {
  const t = performance.now();
  await renderOnce();
  samples.push(performance.now() - t);
}
samples.sort((a, b) => a - b);
const rates = {};
for (const c of levels) {
  await run(warmup, c);
  const t = performance.now();
  await run(renders, c);
  rates[c] = renders / ((performance.now() - t) / 1000);
}
await browser.close();
console.log(JSON.stringify({ p50_ms: samples[Math.floor((samples.length - 1) / 2)], pdf_per_s: rates }));
