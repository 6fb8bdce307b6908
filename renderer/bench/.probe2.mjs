import fs from "node:fs";
import puppeteer from "puppeteer-core";
const [htmlFile, variantsArg, roundsArg, perRoundArg] = process.argv.slice(2);
const html = fs.readFileSync(htmlFile, "utf8");
const INSPECT = fs.readFileSync("/tmp/probe/inspect.js", "utf8");
const ENGINE_FLAGS = ["disable-background-networking","disable-background-timer-throttling","disable-backgrounding-occluded-windows","disable-renderer-backgrounding","disable-breakpad","disable-client-side-phishing-detection","disable-component-extensions-with-background-pages","disable-component-update","disable-default-apps","disable-dev-shm-usage","disable-extensions","disable-features=TranslateUI,Translate,MediaRouter,OptimizationHints,AcceptCHFrame,WebUIOmniboxPopup,WebUIOmniboxAimPopup,SpareRendererForSitePerProcess","disable-gpu","disable-hang-monitor","disable-ipc-flooding-protection","disable-prompt-on-repost","disable-quic","disable-sync","enable-features=NetworkService,NetworkServiceInProcess","force-color-profile=srgb","metrics-recording-only","no-first-run","password-store=basic","use-mock-keychain","lang=en_US","host-resolver-rules=MAP * ~NOTFOUND","webrtc-ip-handling-policy=disable_non_proxied_udp"].map(f => "--" + f);
function cpu(root) {
  const stats = new Map();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try { const s = fs.readFileSync(`/proc/${name}/stat`, "utf8"); const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      stats.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }); } catch {}
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, s] of stats) if (s.ppid === tree[i]) tree.push(pid);
  const by = { host: stats.get(process.pid).ticks / 100 };
  for (const pid of tree) {
    let t = null; try { t = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split(/[\0 ]/).find(a => a.startsWith("--type="))?.slice(7) ?? null; } catch { continue; }
    const kind = t === null ? "browser" : t === "renderer" ? "renderer" : t === "gpu-process" ? "gpu" : "other";
    by[kind] = (by[kind] ?? 0) + stats.get(pid).ticks / 100;
  }
  return by;
}
async function setup(variant) {
  const v = new Set(variant.split("+"));
  const launch = v.has("eflags")
    ? { executablePath: v.has("sbx") ? "/tmp/probe/launch.sh" : "/usr/bin/chromium", ignoreDefaultArgs: true, userDataDir: v.has("sbx") ? "/tmp/probe/home/profile-" + Math.random() : undefined, defaultViewport: v.has("vp") ? { width: 800, height: 600 } : null,
        args: [...ENGINE_FLAGS, "--headless=new", ...(v.has("sbx") ? [] : ["--no-sandbox"]), "--window-size=1280,1024", "--remote-debugging-port=0", ...[...v].filter(t => t.startsWith("--")), "about:blank"] }
    : { executablePath: "/usr/bin/chromium", headless: true, defaultViewport: v.has("novp") ? null : undefined,
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", ...(v.has("ws") ? ["--window-size=1280,1024"] : [])] };
  const browser = await puppeteer.launch(launch);
  let page;
  if (v.has("ctxbg") || v.has("ctxcover")) {
    const ctx = await browser.createBrowserContext();
    if (v.has("ctxcover")) await ctx.newPage();
    const bcdp = await browser.target().createCDPSession();
    const { targetId } = await bcdp.send("Target.createTarget", { url: "about:blank", browserContextId: ctx.id, background: true });
    const target = await browser.waitForTarget(t => t._targetId === targetId);
    page = await target.page();
    if (!v.has("novp2")) await page.setViewport({ width: 800, height: 600 });
  } else {
    page = await browser.newPage();
    if (v.has("bg")) await browser.newPage();
  }
  const vis = await page.evaluate("document.visibilityState");
  console.error(variant, "visibility", vis);
  const cdp = await page.createCDPSession();
  if (v.has("noscript")) await cdp.send("Emulation.setScriptExecutionDisabled", { value: true });
  if (v.has("nocache")) await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  if (v.has("fetch")) await cdp.send("Fetch.enable", { patterns: [{ urlPattern: "*", requestStage: "Request" }] });
  if (v.has("log")) await cdp.send("Log.enable");
  const once = async () => {
    await page.setContent(html, { waitUntil: "load" });
    if (v.has("inspect")) await page.evaluate(`${INSPECT}(false)`);
    if (v.has("stream")) {
      const r = await cdp.send("Page.printToPDF", { printBackground: true, paperWidth: 8.2677, paperHeight: 11.6929, marginTop: 0, marginBottom: 0, marginLeft: 0, marginRight: 0, transferMode: "ReturnAsStream", pageRanges: "1-1001" });
      let eof = false; while (!eof) { const c = await cdp.send("IO.read", { handle: r.stream, size: 8388608 }); eof = c.eof; }
      await cdp.send("IO.close", { handle: r.stream });
    } else await page.pdf({ format: "A4", printBackground: true });
  };
  for (let i = 0; i < 20; i++) await once();
  return { variant, browser, once, pid: browser.process().pid, secs: 0, n: 0, cpu: {} };
}
const vs = [];
for (const v of variantsArg.split(",")) vs.push(await setup(v));
for (let r = 0; r < Number(roundsArg); r++) for (const x of vs) {
  const b = cpu(x.pid); const t = performance.now();
  for (let i = 0; i < Number(perRoundArg); i++) await x.once();
  x.secs += (performance.now() - t) / 1000; x.n += Number(perRoundArg);
  const a = cpu(x.pid); for (const k in a) x.cpu[k] = (x.cpu[k] ?? 0) + a[k] - (b[k] ?? 0);
}
for (const x of vs) {
  const per = Object.fromEntries(Object.entries(x.cpu).map(([k, c]) => [k, +(c * 1000 / x.n).toFixed(1)]));
  const total = Object.values(x.cpu).reduce((a, b) => a + b, 0) * 1000 / x.n;
  console.log(x.variant.padEnd(40), (x.n / x.secs).toFixed(1).padStart(5), "PDF/s  cpu", total.toFixed(1), "ms/PDF", JSON.stringify(per));
  await x.browser.close();
}
