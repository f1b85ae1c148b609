// Browser test of the picoflow portal in headless Debian Chromium, driven by
// go test (internal/box/browser_test.go), which starts the system, passes
// its address and credentials, and checks the screenshots this writes.
// Protocol on stdout: lines "STEP name", "READY-RUNS" (then the Go side adds
// a file), "DONE". Any failure exits non-zero with the reason.
import { chromium } from "playwright-core";
import { execSync } from "node:child_process";

const [base, user, password, outDir, recordID, hostileID, movieID] = process.argv.slice(2);
const exe = process.env.CHROMIUM || execSync("command -v chromium").toString().trim();
const say = (s) => console.log(s);
function check(cond, msg) { if (!cond) { throw new Error(msg); } }

const browser = await chromium.launch({
  executablePath: exe,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
const dialogs = [];
let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });

  say("STEP login");
  await page.goto(base + "/login?next=/search");
  await page.fill('input[name="user"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForURL("**/search"), page.click('button[type="submit"]')]);
  check((await page.textContent("#user")).trim() === user, "not signed in");

  say("STEP search");
  await page.fill('input[name="q"]', "gold");
  await page.click('form.search button[type="submit"]');
  await page.waitForFunction(() => document.querySelector("#count") && /1 record/.test(document.querySelector("#count").textContent));
  check(page.url().includes("q=gold"), "htmx did not push the search URL: " + page.url());
  await page.waitForFunction(() => [...document.querySelectorAll(".hit img")].every((i) => i.complete && i.naturalWidth > 0));
  await page.screenshot({ path: outDir + "/search.png", fullPage: true });

  say("STEP facet");
  await page.goto(base + "/search");
  const facet = page.locator('[data-facet="element"] a', { hasText: "Au" }).first();
  await facet.click();
  await page.waitForURL(/element=Au/);
  check((await page.locator(".hit").count()) === 1, "element facet Au should leave one record");

  say("STEP search language");
  await page.goto(base + "/search?q=" + encodeURIComponent("element:gold voltage:>=200kV"));
  check((await page.locator(".hit").count()) === 1, "element:gold voltage:>=200kV should find the gold record");
  check((await page.inputValue('input[name="q"]')) === "element:gold voltage:>=200kV", "the search box lost the field terms");
  await page.goto(base + "/search?q=zzzz&element=Au");
  const chips = await page.textContent("#chips");
  check(chips.includes("element: Au") && chips.includes("clear all"), "no filter chips: " + chips);
  const empty = await page.textContent("#empty");
  check(empty.includes("without “zzzz”: 1 record"), "the empty result does not say why: " + empty);
  await page.click("#search-help summary");
  check(await page.isVisible("#search-help table"), "the search help does not open");
  await page.screenshot({ path: outDir + "/search-empty.png", fullPage: true });

  say("STEP record");
  await page.goto(base + "/records/" + recordID);
  await page.waitForFunction(() => [...document.querySelectorAll(".figs img")].length >= 3 &&
    [...document.querySelectorAll(".figs img")].every((i) => i.complete && i.naturalWidth > 0));
  const meta = await page.textContent("#metadata");
  check(meta.includes("Accelerating voltage") && meta.includes("kV"), "metadata table without units");
  // The interactive spectrum answers the pointer.
  await page.waitForFunction(() => document.querySelector("#spectrum-canvas").dataset.ready === "1");
  const canvas = page.locator("#spectrum-canvas");
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  await canvas.hover({ position: { x: box.width * 0.3, y: box.height / 2 } });
  await page.waitForFunction(() => /keV: \d+ counts/.test(document.querySelector("#spectrum-readout").textContent));
  // The viewer: linear counts, zoom, a typed element's lines, keyboard.
  const view0 = await canvas.getAttribute("data-view");
  check(/^0\.\d+-1\d\.\d+$/.test(view0) || /^0\.\d+-\d+\.\d+$/.test(view0), "initial view: " + view0);
  await page.click("#spectrum-viewer .zoom-in");
  check((await canvas.getAttribute("data-view")) !== view0, "zoom did not change the view");
  await page.click("#spectrum-viewer .scale");
  check((await canvas.getAttribute("data-scale")) === "linear", "no linear scale");
  await page.fill('#spectrum-viewer input[name="element"]', "fe");
  await page.click('#spectrum-viewer form.add-element button');
  check((await canvas.getAttribute("data-elements")).split(",").includes("Fe"), "typed element not shown: " + await canvas.getAttribute("data-elements"));
  await page.click("#spectrum-viewer .reset");
  await canvas.focus();
  const r1 = await page.textContent("#spectrum-readout");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  const r2 = await page.textContent("#spectrum-readout");
  check(r1 !== r2 && /keV: \d+ counts/.test(r2), "keyboard readout: " + r1 + " → " + r2);
  // The raw metadata opens as a tree, level by level.
  await page.click("#raw-metadata summary");
  await page.waitForFunction(() => document.querySelector("#raw-metadata").dataset.ready === "1");
  check((await page.locator("#raw-metadata .tree > details").count()) > 0, "raw metadata tree is empty");
  await page.locator("#raw-metadata .tree > details > summary").first().click();
  await page.waitForFunction(() => document.querySelectorAll("#raw-metadata .tree > details > details, #raw-metadata .tree > details > .leaf").length > 0,
    null, { timeout: 5000 }).catch(() => { throw new Error("a tree level does not open"); });
  await page.screenshot({ path: outDir + "/record.png", fullPage: true });

  say("STEP movie");
  await page.goto(base + "/records/" + movieID);
  // The browser decodes the H.264 MP4: metadata loaded, a duration, and a
  // frame after seeking.
  await page.waitForFunction(() => {
    const v = document.querySelector("video");
    return v && v.readyState >= 1 && v.duration > 0;
  }, null, { timeout: 20000 });
  await page.evaluate(() => { const v = document.querySelector("video"); v.currentTime = v.duration / 2; });
  await page.waitForFunction(() => document.querySelector("video").readyState >= 2, null, { timeout: 20000 });
  // Frame stepping: the readout follows the buttons.
  const readout = page.locator(".frame-readout").first();
  await page.waitForFunction(() => /frame \d+ \/ 20/.test(document.querySelector(".frame-readout").textContent));
  const frameStart = await readout.textContent();
  await page.locator('.frame-controls button[data-step="-1"]').first().click();
  await page.waitForFunction((b) => document.querySelector(".frame-readout").textContent !== b, frameStart);
  const frameBefore = await readout.textContent();
  await page.locator('.frame-controls button[data-step="1"]').first().click();
  await page.waitForFunction((b) => document.querySelector(".frame-readout").textContent !== b, frameBefore);
  const frameAfter = await readout.textContent();
  const num = (s) => parseInt(s.match(/frame (\d+)/)[1], 10);
  check(num(frameAfter) === num(frameBefore) + 1 && /t = \d+\.\d\d s/.test(frameAfter), "frame step: " + frameBefore + " → " + frameAfter);
  await page.waitForFunction(() => document.querySelector("#particles") && document.querySelector("#particles").dataset.ready === "1"
    && !document.querySelector("#particles .events-title").hidden);
  const particles = await page.textContent("#particles");
  check(/\d+ tracks; median diameter \d+\.\d nm/.test(particles) && (await page.locator("#particles tbody tr").count()) > 0, "particles panel: " + particles);
  check(/Events: \d+ merges, \d+ nucleations, \d+ dissolutions/.test(particles), "events: " + particles);
  for (const fig of ["Size distribution over time", "Growth of the largest particles"]) {
    check((await page.locator("figcaption", { hasText: fig }).count()) === 1, "figure " + fig);
  }
  await page.screenshot({ path: outDir + "/movie.png", fullPage: true });

  say("STEP hostile");
  await page.goto(base + "/records/" + hostileID);
  const title = await page.textContent("#title");
  check(title.includes("<script>"), "hostile title not shown as text: " + title);
  check((await page.locator("main script").count()) === 0, "hostile markup became a script element");

  say("STEP runs");
  await page.goto(base + "/runs");
  await page.waitForFunction(() => document.querySelector("#live") && document.querySelector("#live").textContent === "live");
  const before = await page.locator("#runs-body tr[data-run]").count();
  say("READY-RUNS");
  await page.waitForFunction((n) => document.querySelectorAll("#runs-body tr[data-run]").length > n &&
    document.querySelector("#runs-body tr[data-run] .state-succeeded") !== null, before, { timeout: 60000 });
  await page.screenshot({ path: outDir + "/runs.png", fullPage: true });

  say("STEP campaign");
  await page.goto(base + "/campaigns");
  await page.fill('input[name="query"]', "kind:hyperspectral");
  await page.fill('textarea[name="params"]', "min_significance=6");
  await Promise.all([page.waitForURL(/\/campaigns\/c/), page.click('#new-campaign button[type="submit"]')]);
  // The page follows the campaign (htmx) until it is done; the hostile
  // record has no raw file and is listed as failed, with the reason.
  await page.waitForFunction(() => document.querySelector("#campaign-state").textContent === "done", null, { timeout: 90000 });
  const failures = await page.textContent("#failures");
  check(failures.includes("no raw file"), "the failed record's reason is not shown: " + failures);
  await page.screenshot({ path: outDir + "/campaign.png", fullPage: true });
  const campaignPath = new URL(page.url()).pathname;

  say("STEP versions");
  await page.goto(base + "/records/" + recordID);
  const versions = await page.textContent("#versions");
  check(/version 2 \(newest\)/.test(versions) && versions.includes("min_significance 5 → 6"), "versions panel: " + versions);
  const prov = await page.textContent("#provenance");
  check(prov.includes("min_significance") && prov.includes("sha256"), "provenance panel: " + prov);
  await page.click('#versions a[href$="?version=1"]');
  await page.waitForSelector("#old-version");
  await page.waitForFunction(() => [...document.querySelectorAll(".figs img")].length >= 3 &&
    [...document.querySelectorAll(".figs img")].every((i) => i.complete && i.naturalWidth > 0 && i.src.includes("version=1")));
  await page.screenshot({ path: outDir + "/record-version.png", fullPage: true });

  say("STEP edit");
  // An administrator describes the experiment: a new version, who and when;
  // the title says the sample; the proposal gets a page.
  await page.goto(base + "/records/" + recordID);
  await page.click("#edit summary");
  await page.fill('#edit textarea[name="description"]', "Gold particles on a carbon film, area 1");
  await page.fill('#edit input[name="keywords"]', "calibration, gold");
  await page.fill('#edit input[name="sample"]', "Au on C test specimen");
  await page.fill('#edit input[name="license"]', "CC-BY-4.0");
  await Promise.all([page.waitForURL("**/records/" + recordID), page.click('#edit button[type="submit"]')]);
  check((await page.textContent("#title")).startsWith("Au on C test specimen: "), "title after the edit: " + await page.textContent("#title"));
  check((await page.textContent("#description")).includes("area 1"), "description after the edit");
  const edited = await page.textContent("#versions");
  check(/version 3 \(newest\)/.test(edited) && edited.includes("edited by user:admin") && edited.includes("description changed"), "versions after the edit: " + edited);
  check((await page.textContent("#experiment")).includes("licence CC-BY-4.0"), "experiment line after the edit");
  await page.screenshot({ path: outDir + "/record-edited.png", fullPage: true });
  // Back to the search: a real link (the CSP refuses javascript: URLs).
  await page.goto(base + "/search?q=gold");
  await page.click(".hit h2 a");
  await page.waitForURL("**/records/**");
  await Promise.all([page.waitForURL(/\/search/), page.click("a.back")]);

  say("STEP runs board");
  await page.goto(base + "/runs?state=succeeded");
  const states = await page.locator("#runs-body td[class^=state-]").allTextContents();
  check(states.length > 0 && states.every((x) => x === "succeeded"), "state filter: " + states.join(","));
  check(/\d+ runs? · \d+ succeeded/.test(await page.textContent("#run-totals")), "totals: " + await page.textContent("#run-totals"));
  const nf = await page.request.get(base + "/nowhere");
  check(nf.status() === 404 && (await nf.text()).includes("There is no page at this address"), "404 page: " + nf.status());

  say("STEP a11y");
  // Every page at 1280 and 390 px: no horizontal overflow, and axe-core
  // finds no serious or critical violation.
  const axePath = new URL("../node_modules/axe-core/axe.min.js", import.meta.url).pathname;
  const pages = ["/search", "/search?q=zzzz&element=Au", "/records/" + recordID, "/records/" + recordID + "?version=1", "/records/" + movieID,
    "/runs", "/runs/" + movieID, "/campaigns", campaignPath, "/proposals/none", "/login", "/nowhere"];
  const problems = [];
  // axe is injected as a script, which our CSP rightly refuses: this
  // context (signed in as the same user) lets the test inject it.
  const actx = await browser.newContext({ bypassCSP: true, storageState: await page.context().storageState() });
  const ap = await actx.newPage();
  for (const width of [1280, 390]) {
    await ap.setViewportSize({ width, height: 900 });
    for (const path of pages) {
      await ap.goto(base + path);
      await ap.waitForLoadState("networkidle").catch(() => {});
      const over = await ap.evaluate(() => document.documentElement.scrollWidth);
      if (over > width + 1) problems.push(width + "px " + path + ": page is " + over + " px wide");
      await ap.addScriptTag({ path: axePath });
      const res = await ap.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ["violations"] });
        return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => v.id + " (" + v.impact + "): " + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | "));
      });
      res.forEach((v) => problems.push(width + "px " + path + ": " + v));
    }
    if (width === 390) await ap.goto(base + "/records/" + recordID).then(() => ap.screenshot({ path: outDir + "/record-390.png", fullPage: true }));
  }
  await actx.close();
  check(problems.length === 0, "accessibility and layout:\n  " + problems.join("\n  "));

  check(dialogs.length === 0, "a dialog opened (script injection?): " + dialogs.join("; "));
  check(errors.length === 0, "browser errors: " + errors.join("; "));
  say("DONE");
} catch (e) {
  console.error("FAIL " + (e && e.stack || e));
  if (page) {
    console.error("at " + page.url() + "; images: " + JSON.stringify(await page.evaluate(() =>
      [...document.images].map((i) => [i.getAttribute("src"), i.complete, i.naturalWidth]))));
    console.error("browser errors: " + errors.join("; "));
    console.error("canvas: " + JSON.stringify(await page.evaluate(async () => {
      const c = document.querySelector("#spectrum-canvas");
      if (!c) return null;
      const r = await fetch(c.dataset.src);
      return [c.dataset.src, c.dataset.ready, r.status, (await r.text()).slice(0, 80), document.querySelector("#spectrum-readout").textContent];
    })));
    await page.screenshot({ path: outDir + "/failure.png", fullPage: true }).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
