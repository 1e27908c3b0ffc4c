// Opens report pages in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) and prints, as one JSON array, what a reader's browser would show wrong:
// horizontal overflow (and the elements that cause it), console errors and warnings, page errors, and every request other than
// the page itself (a report must be self-contained; data: URIs are part of the page).
//
//   node tests/browser/check.mjs --page FILE --width PX [--screenshot PNG] [--page ...]
//
// ABREPORT_TEST_PLAYWRIGHT is the playwright-core package folder (tests/run.sh installs it
// into target/test-npm/playwright); ABREPORT_TEST_CHROMIUM overrides /usr/bin/chromium.
// Nothing leaves the machine: every request that is not the page is recorded and aborted.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

function usage(message) {
  console.error(`check.mjs: ${message}\nusage: node check.mjs --page FILE --width PX [--screenshot PNG] [--page ...]`);
  process.exit(2);
}

function parseArgs(argv) {
  const pages = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === "--page") pages.push({ file: resolve(value) });
    else if (pages.length === 0) usage(`${flag} before any --page`);
    else if (flag === "--width") pages.at(-1).width = Number.parseInt(value, 10);
    else if (flag === "--screenshot") pages.at(-1).screenshot = resolve(value);
    else usage(`unknown option ${flag}`);
  }
  if (pages.length === 0) usage("no --page");
  for (const p of pages) {
    if (!Number.isInteger(p.width) || p.width <= 0) usage(`--page ${p.file} needs a --width in px`);
  }
  return pages;
}

// Runs in the page: the document's overflow, the elements that cause it, and the smallest
// rendered size of SVG text (charts are scaled by their viewBox, so their text shrinks).
function measure() {
  const viewport = window.innerWidth;
  const scrollsSideways = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const overflowX = getComputedStyle(a).overflowX;
      // Only a box the reader can scroll: what `hidden` or `clip` cuts off is lost to them.
      if (overflowX === "auto" || overflowX === "scroll") return true;
    }
    return false;
  };
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += `#${el.id}`;
    const cls = typeof el.className === "string" ? el.className.trim() : el.getAttribute("class") || "";
    if (cls) name += "." + cls.split(/\s+/).join(".");
    return name;
  };
  const overflows = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > viewport + 0.5 && !scrollsSideways(el);
  };
  const entry = (el) => {
    const r = el.getBoundingClientRect();
    return {
      element: describe(el),
      path: [...ancestors(el)].map(describe).join(" > "),
      right: Math.round(r.right),
      width: Math.round(r.width),
      text: (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 80),
    };
  };
  // Where an overflow starts (an element past the edge whose parent is not), and the
  // innermost elements past it (none of whose children is): the content too wide to fit.
  const overflowing = [];
  const innermost = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!overflows(el)) continue;
    const parent = el.parentElement;
    if (overflowing.length < 25 && !(parent && parent !== document.body && overflows(parent))) overflowing.push(entry(el));
    if (innermost.length < 25 && ![...el.children].some(overflows)) innermost.push(entry(el));
  }
  function* ancestors(el) {
    const chain = [];
    for (let a = el; a && a !== document.body; a = a.parentElement) chain.unshift(a);
    yield* chain;
  }
  let smallest = null;
  for (const t of document.querySelectorAll("svg text")) {
    const m = t.getScreenCTM();
    if (!m || !t.textContent.trim()) continue;
    const px = Number.parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
    if (smallest === null || px < smallest.px) smallest = { px: Math.round(px * 100) / 100, text: t.textContent.trim().slice(0, 60) };
  }
  return {
    inner_width: viewport,
    scroll_width: document.scrollingElement.scrollWidth,
    document_overflows: document.scrollingElement.scrollWidth > viewport,
    overflowing,
    innermost,
    smallest_svg_text: smallest,
  };
}

async function checkPage(chromium, executablePath, page) {
  const userDataDir = mkdtempSync(join(tmpdir(), "abreport-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    // Playwright passes --user-data-dir (the fresh folder above) itself.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: page.width, height: 900 },
    deviceScaleFactor: 1,
  });
  const pageUrl = pathToFileURL(page.file).href;
  const result = { file: page.file, width: page.width, console: [], page_errors: [], requests: [] };
  try {
    await context.route("**/*", (route) => {
      const url = route.request().url();
      return url === pageUrl ? route.continue() : route.abort();
    });
    const tab = context.pages()[0] ?? (await context.newPage());
    tab.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") result.console.push({ type: msg.type(), text: msg.text() });
    });
    tab.on("pageerror", (error) => result.page_errors.push(String(error)));
    tab.on("request", (request) => {
      const url = request.url();
      if (url !== pageUrl && !url.startsWith("data:")) result.requests.push(url);
    });
    const response = await tab.goto(pageUrl, { waitUntil: "load" });
    result.loaded = response === null || response.ok() || pageUrl.startsWith("file:");
    Object.assign(result, await tab.evaluate(measure));
    if (page.screenshot) {
      await tab.screenshot({ path: page.screenshot, fullPage: true });
      result.screenshot = page.screenshot;
    }
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
  return result;
}

const pages = parseArgs(process.argv.slice(2));
const playwrightDir = process.env.ABREPORT_TEST_PLAYWRIGHT;
if (!playwrightDir) usage("ABREPORT_TEST_PLAYWRIGHT (the playwright-core folder) is not set: run tests/run.sh");
const { chromium } = await import(pathToFileURL(join(playwrightDir, "index.mjs")).href);
const executablePath = process.env.ABREPORT_TEST_CHROMIUM || "/usr/bin/chromium";
const results = [];
for (const page of pages) results.push(await checkPage(chromium, executablePath, page));
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
