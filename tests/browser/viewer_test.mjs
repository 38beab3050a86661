// Browser test of the viewer: Debian's Chromium driven by playwright-core loads the page from
// `attnscope serve` on 127.0.0.1, moves the threshold slider, switches head with the slider and
// with the overview grid, types a new text, hovers and rotates the 3-D complex, exports figures,
// and checks that the figures change accordingly. Screenshots go to SHOT_DIR.
//
// usage: node viewer_test.mjs ATTNSCOPE MODEL_DIR WEB_DIR SHOT_DIR
// Prints "N passed, M failed"; exit status 0 only when every check passed.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(import.meta.url);
const pwDir = process.env.PLAYWRIGHT_CORE ||
  path.join(here, "..", "..", "third_party", "playwright", "node_modules", "playwright-core");
const { chromium } = require(pwDir);

const [attnscope, model, webDir, shotDir] = process.argv.slice(2);
fs.mkdirSync(shotDir, { recursive: true });

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; console.log("ok   " + what); }
  else { failed++; console.log("FAIL " + what); }
}

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(attnscope, ["serve", "--model", model, "--port", "0", "--host", "127.0.0.1",
      "--web", webDir], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    const timer = setTimeout(() => { proc.kill("SIGKILL"); reject(new Error("server start timed out: " + err)); }, 60000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)\//);
      if (m) { clearTimeout(timer); resolve({ proc, url: m[1] + "/", stderr: () => err }); }
    });
    proc.stderr.on("data", (d) => { err += d; });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${err}`)); });
  });
}

function stopServer(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve(proc.exitCode);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 20000);
    proc.removeAllListeners("exit");
    proc.on("exit", (code) => { clearTimeout(timer); resolve(code); });
    proc.kill("SIGTERM");
  });
}

const analyzed = (page) => page.evaluate(() => +document.body.dataset.analyzed || 0);
async function waitAnalyzed(page, before) {
  await page.waitForFunction((b) => (+document.body.dataset.analyzed || 0) > b && !inflight, before,
    { timeout: 30000 });
}
const data = (page, id, key) => page.$eval("#" + id, (el, k) => el.dataset[k], key);
const pixels = (page, id) => page.$eval("#" + id, (el) => el.toDataURL());

async function setRange(page, id, value) {
  const before = await analyzed(page);
  await page.$eval("#" + id, (el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
  await waitAnalyzed(page, before);
}

async function main() {
  const { proc, url, stderr } = await startServer();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "attnscope-chromium-"));
  let context = null;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1500, height: 1100 },
      acceptDownloads: true,
    });
    const page = context.pages()[0] || await context.newPage();
    const consoleErrors = [];
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    // (the too-long text below is answered 400 on purpose; Chromium logs that)
    page.on("console", (m) => {
      if (m.type() === "error" && !/status of 400/.test(m.text())) consoleErrors.push(m.text());
    });
    // no request may leave 127.0.0.1
    const external = [];
    page.on("request", (r) => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) external.push(r.url()); });

    await page.goto(url);
    await page.waitForFunction(() => (+document.body.dataset.analyzed || 0) >= 1, null, { timeout: 30000 });
    await page.waitForFunction(() => document.getElementById("overview").dataset.selected, null, { timeout: 30000 });
    const model = await page.textContent("#model");
    check(/bert/.test(model) && /2 layers × 4 heads/.test(model), "model name and size shown: " + model);
    const tokens0 = JSON.parse(await data(page, "heatmap1", "tokens"));
    check(tokens0[0] === "[CLS]" && tokens0.includes("cat"), "heatmap 1 labelled with the text's tokens");
    const tokens2 = JSON.parse(await data(page, "heatmap2", "tokens"));
    check(tokens2.includes("dog"), "heatmap 2 labelled with text 2's tokens");
    check(/bottleneck/.test(await page.textContent("#summary")), "bottleneck distance shown");
    await page.screenshot({ path: path.join(shotDir, "01-initial.png"), fullPage: true });

    // threshold slider: the complex gains edges as the threshold grows
    const n = tokens0.length;
    await setRange(page, "threshold", 0);
    const e0 = +(await data(page, "complex", "edges"));
    const c0 = +(await data(page, "complex", "clusters"));
    const img0 = await pixels(page, "complex");
    await page.screenshot({ path: path.join(shotDir, "02-threshold-0.png") });
    const maxT = +(await page.$eval("#threshold", (el) => el.max));
    await setRange(page, "threshold", maxT * 0.45);
    const e1 = +(await data(page, "complex", "edges"));
    await page.screenshot({ path: path.join(shotDir, "03-threshold-mid.png") });
    await setRange(page, "threshold", maxT);
    const e2 = +(await data(page, "complex", "edges"));
    const c2 = +(await data(page, "complex", "clusters"));
    check(e0 === 0 && c0 === n, `threshold 0: no edges, every token its own cluster (${e0}, ${c0})`);
    check(e1 > 0 && e1 < n * (n - 1) / 2, `middle threshold: some edges (${e1})`);
    check(e2 === n * (n - 1) / 2 && c2 === 1, `largest threshold: the full complex (${e2} edges, ${c2} cluster)`);
    check(img0 !== await pixels(page, "complex"), "the 3-D view was redrawn");
    check(+(await page.$eval("#latency", (el) => el.dataset.slider)) > 0, "slider latency reported");
    await setRange(page, "threshold", maxT * 0.45);

    // head slider
    const heat0 = await pixels(page, "heatmap1");
    await setRange(page, "head", 2);
    check((await data(page, "heatmap1", "head")) === "0,2", "head slider selects layer 0 head 2");
    check(heat0 !== await pixels(page, "heatmap1"), "the heatmap changed with the head");
    check((await data(page, "overview", "selected")) === "0,2", "overview grid marks the head");
    await page.screenshot({ path: path.join(shotDir, "04-head-slider.png"), fullPage: true });

    // measure select: the measure heatmap changes, the attention heatmap does not
    const meas0 = await pixels(page, "measurecv"), att0 = await pixels(page, "heatmap1");
    let before = await analyzed(page);
    await page.selectOption("#measure", "kl");
    await waitAnalyzed(page, before);
    check(meas0 !== await pixels(page, "measurecv") && att0 === await pixels(page, "heatmap1"),
      "measure KL: the measure heatmap changes, the attention heatmap does not");
    before = await analyzed(page);
    await page.selectOption("#measure", "jsd");
    await waitAnalyzed(page, before);

    // overview grid: click layer 1 head 3
    const g = await page.evaluate(() => state.overviewGeom);
    const box = await page.$eval("#overview", (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top]; });
    before = await analyzed(page);
    await page.mouse.click(box[0] + g.left + 3.5 * g.cell, box[1] + g.top + 1.5 * g.cell);
    await waitAnalyzed(page, before);
    check((await data(page, "heatmap1", "head")) === "1,3", "a click on the grid selects layer 1 head 3");
    check((await page.$eval("#layer", (el) => el.value)) === "1" && (await page.$eval("#head", (el) => el.value)) === "3",
      "the sliders follow the grid");
    await page.screenshot({ path: path.join(shotDir, "05-overview-click.png"), fullPage: true });

    // a new text
    before = await analyzed(page);
    await page.fill("#text1", "Quantum physics is strange but beautiful.");
    await waitAnalyzed(page, before);
    const tokens1 = JSON.parse(await data(page, "heatmap1", "tokens"));
    check(tokens1.includes("Quantum") && !tokens1.includes("cat"), "the heatmap shows the new text's tokens");
    const ctoks = JSON.parse(await data(page, "complex", "tokens"));
    check(ctoks.includes("beautiful"), "the 3-D complex shows the new text's tokens");
    check(+(await page.$eval("#latency", (el) => el.dataset.text)) > 0, "new-text latency reported");
    await page.waitForFunction(() => state.overview && state.overview.tokens.includes("Quantum"), null, { timeout: 30000 });
    check(true, "the overview grid follows the new text");

    // hover and rotate the 3-D view
    const pos = await page.evaluate(() => state.projected[1]);
    const cbox = await page.$eval("#complex", (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top]; });
    await page.mouse.move(cbox[0] + pos[0], cbox[1] + pos[1]);
    await page.waitForFunction(() => !document.getElementById("tooltip").hidden, null, { timeout: 5000 });
    const tip = await page.textContent("#tooltip");
    check(tip.startsWith(tokens1[1]), `hover shows the token: "${tip}"`);
    await page.screenshot({ path: path.join(shotDir, "06-hover.png") });
    const yaw0 = await page.evaluate(() => state.rot.yaw);
    await page.mouse.move(cbox[0] + 100, cbox[1] + 200);
    await page.mouse.down();
    await page.mouse.move(cbox[0] + 220, cbox[1] + 240, { steps: 6 });
    await page.mouse.up();
    check(Math.abs((await page.evaluate(() => state.rot.yaw)) - yaw0) > 0.5, "dragging rotates the complex");

    // exports: client-side PNG and SVG, and the C renderer's figures
    for (const [view, label, ext] of [["complex", "PNG", ".png"], ["complex", "SVG", ".svg"],
      ["diagram", "SVG", ".svg"], ["heatmap1", "PNG·C", ".png"], ["barcode", "SVG·C", ".svg"],
      ["overview", "PNG", ".png"]]) {
      const [dl] = await Promise.all([
        page.waitForEvent("download", { timeout: 30000 }),
        page.click(`article[data-view=${view}] button[data-export="${label}"]`),
      ]);
      const file = await dl.path();
      const bytes = fs.readFileSync(file);
      const ok = ext === ".png" ? bytes.subarray(0, 4).toString("latin1") === "\x89PNG"
        : /<svg/.test(bytes.subarray(0, 400).toString());
      check(dl.suggestedFilename().endsWith(ext) && ok && bytes.length > 500,
        `export ${view} ${label}: ${dl.suggestedFilename()} (${bytes.length} bytes)`);
      if (view === "complex" && ext === ".svg")
        fs.copyFileSync(file, path.join(shotDir, "complex-export.svg"));
    }

    // a bad text: the error is shown and the page keeps working
    before = await analyzed(page);
    await page.fill("#text1", "word ".repeat(80));
    await page.waitForFunction(() => !document.getElementById("error").hidden, null, { timeout: 30000 });
    check(/tokens/.test(await page.textContent("#error")), "too long a text: the server's message is shown");
    await page.screenshot({ path: path.join(shotDir, "07-error.png") });
    await page.fill("#text1", "Back to a short text.");
    await waitAnalyzed(page, before);
    check(await page.$eval("#error", (el) => el.hidden), "the error clears with a good text");
    await page.screenshot({ path: path.join(shotDir, "08-final.png"), fullPage: true });

    check(consoleErrors.length === 0, "no errors in the page's console: " + consoleErrors.join("; "));
    check(external.length === 0, "no request left the server: " + external.join(" "));
  } catch (e) {
    failed++;
    console.log("FAIL " + (e && e.stack ? e.stack : e));
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
    const code = await stopServer(proc);
    check(code === 0, `server stopped cleanly on SIGTERM (exit ${code})`);
    if (code !== 0) console.log(stderr());
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
