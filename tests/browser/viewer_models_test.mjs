// Browser test of the viewer's image and model-pair views: Debian's Chromium driven by
// playwright-core. A server on a ViT: an image is chosen in the file input, the heatmap shows
// [CLS] and the patches p(r,c), the sphere graph is drawn (hover names the patch, a drag rotates
// it, the head slider redraws it) and exported by the C renderer. A server on two text models:
// the heads × heads heatmap of the comparison is drawn, a click on a cell shows both heads.
// Screenshots go to SHOT_DIR (09-image.png, 10-sphere-hover.png, 11-pair.png, 12-pair-click.png).
//
// usage: node viewer_models_test.mjs ATTNSCOPE VIT_DIR IMAGE MODEL_A MODEL_B WEB_DIR SHOT_DIR
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

const [attnscope, vit, image, modelA, modelB, webDir, shotDir] = process.argv.slice(2);
fs.mkdirSync(shotDir, { recursive: true });

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; console.log("ok   " + what); }
  else { failed++; console.log("FAIL " + what); }
}

function startServer(models) {
  return new Promise((resolve, reject) => {
    const args = ["serve"];
    for (const m of models) args.push("--model", m);
    const proc = spawn(attnscope, [...args, "--port", "0", "--host", "127.0.0.1", "--web", webDir],
      { stdio: ["ignore", "pipe", "pipe"] });
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

const data = (page, id, key) => page.$eval("#" + id, (el, k) => el.dataset[k], key);
const pixels = (page, id) => page.$eval("#" + id, (el) => el.toDataURL());
const counter = (page, key) => page.evaluate((k) => +document.body.dataset[k] || 0, key);
const box = (page, id) => page.$eval("#" + id, (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top]; });

async function withPage(models, fn) {
  const { proc, url, stderr } = await startServer(models);
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
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(url);
    await fn(page);
    check(errors.length === 0, "no errors in the page's console: " + errors.join("; "));
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
}

async function imageModel(page) {
  await page.waitForFunction(() => state.info, null, { timeout: 30000 });
  check(await page.$eval("#texts", (el) => el.hidden) && !(await page.$eval("#image-input", (el) => el.hidden)),
    "a vision model: the image input replaces the texts");
  check(/vit/.test(await page.textContent("#model")) && /4×4 patches/.test(await page.textContent("#model")),
    "model and patch grid shown");
  await page.setInputFiles("#image-file", image);
  await page.waitForFunction(() => (+document.body.dataset.analyzed || 0) >= 1 && (+document.body.dataset.sphere || 0) >= 1,
    null, { timeout: 30000 });
  const tokens = JSON.parse(await data(page, "heatmap1", "tokens"));
  check(tokens.length === 17 && tokens[0] === "[CLS]" && tokens[1] === "p(0,0)" && tokens[16] === "p(3,3)",
    "the heatmap is labelled [CLS], p(0,0) … p(3,3)");
  check(+(await data(page, "sphere", "points")) === 16 && +(await data(page, "sphere", "edges")) === 32,
    "the sphere holds the 16 patches and the 2n strongest edges");
  await page.waitForFunction(() => document.getElementById("overview").dataset.selected, null, { timeout: 30000 });
  await page.screenshot({ path: path.join(shotDir, "09-image.png"), fullPage: true });

  // hover a patch on the sphere, then rotate it
  const pos = await page.evaluate(() => state.sphereProjected.map((q, i) => [q, i]).sort((a, b) => a[0][2] - b[0][2])[0]);
  const sb = await box(page, "sphere");
  await page.mouse.move(sb[0] + pos[0][0], sb[1] + pos[0][1]);
  await page.waitForFunction(() => document.getElementById("sphere").dataset.hover, null, { timeout: 5000 });
  const hover = await data(page, "sphere", "hover");
  check(hover === (await page.evaluate((i) => state.sphere.patches[i], pos[1])), `hover names the patch: ${hover}`);
  await page.locator("article[data-view=sphere]").screenshot({ path: path.join(shotDir, "10-sphere-hover.png") });
  const yaw0 = await page.evaluate(() => state.sphereRot.yaw);
  await page.mouse.move(sb[0] + 60, sb[1] + 240);
  await page.mouse.down();
  await page.mouse.move(sb[0] + 200, sb[1] + 260, { steps: 6 });
  await page.mouse.up();
  check(Math.abs((await page.evaluate(() => state.sphereRot.yaw)) - yaw0) > 0.5, "dragging rotates the sphere");

  // another head: the sphere is asked for again and redrawn
  const before = await counter(page, "sphere"), img0 = await pixels(page, "sphere");
  await page.$eval("#head", (el) => { el.value = "3"; el.dispatchEvent(new Event("input", { bubbles: true })); });
  await page.waitForFunction((b) => (+document.body.dataset.sphere || 0) > b, before, { timeout: 30000 });
  check((await data(page, "sphere", "head")) === "0,3" && img0 !== await pixels(page, "sphere"),
    "the head slider redraws the sphere for layer 0 head 3");

  // the C renderer's sphere figure
  const [dl] = await Promise.all([
    page.waitForEvent("download", { timeout: 30000 }),
    page.click('article[data-view=sphere] button[data-export="PNG·C"]'),
  ]);
  const bytes = fs.readFileSync(await dl.path());
  check(bytes.subarray(0, 4).toString("latin1") === "\x89PNG" && bytes.length > 5000,
    `export sphere PNG·C (${bytes.length} bytes)`);
}

async function modelPair(page) {
  await page.waitForFunction(() => (+document.body.dataset.pair || 0) >= 1, null, { timeout: 60000 });
  check(!(await page.$eval("article[data-view=pair]", (el) => el.hidden)), "two models: the comparison view is shown");
  check((await data(page, "pair", "shape")) === "8x8", "heads of A × heads of B: 8 × 8");
  await page.screenshot({ path: path.join(shotDir, "11-pair.png"), fullPage: true });
  const g = await page.evaluate(() => state.pairGeom);
  const pb = await box(page, "pair");
  // row: A layer 1 head 2 (index 6); column: B layer 0 head 3 (index 3)
  await page.mouse.click(pb[0] + g.left + 3.5 * g.cell, pb[1] + g.top + 6.5 * g.cell);
  await page.waitForFunction(() => document.body.dataset.pairHeads === "6,3", null, { timeout: 30000 });
  check((await data(page, "pairA", "head")) === "1,2" && (await data(page, "pairB", "head")) === "0,3",
    "a click shows A's layer 1 head 2 and B's layer 0 head 3");
  const ta = JSON.parse(await data(page, "pairA", "tokens")), tb = JSON.parse(await data(page, "pairB", "tokens"));
  check(ta[0] === "[CLS]" && !tb.includes("[CLS]") && tb.includes("cat"), "each head with its own model's tokens");
  await page.mouse.move(pb[0] + g.left + 3.5 * g.cell, pb[1] + g.top + 6.5 * g.cell);
  await page.waitForFunction(() => !document.getElementById("pair-tooltip").hidden, null, { timeout: 5000 });
  check(/A L1 H2 × B L0 H3/.test(await page.textContent("#pair-tooltip")), "hover names both heads");
  await page.locator("article[data-view=pair]").screenshot({ path: path.join(shotDir, "12-pair-click.png") });
  // the dimension select redraws
  const p0 = await pixels(page, "pair");
  await page.selectOption("#pair-dim", "0");
  check(p0 !== await pixels(page, "pair"), "H0 redraws the heatmap");
}

await withPage([vit], imageModel);
await withPage([modelA, modelB], modelPair);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
