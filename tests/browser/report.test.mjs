// The evaluation report in headless Chromium: it loads with no console errors
// and no network requests, the misclassified filter, the confidence sort and the
// threshold slider change what is shown, and a screenshot is taken.
// Run by crates/cvtk-eval/tests/report_browser.rs, which writes the report and
// passes: CVTK_REPORT (html path), CVTK_SCREENSHOT (png path), CVTK_EXPECT
// (JSON: total and misclassified image counts, precision/recall/kept of label 0
// at thresholds 0.5 and 0.9 and at the best-F1 threshold it should start at,
// that threshold, and the expected calibration error).
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, watch } from "./chromium.mjs";

const report = process.env.CVTK_REPORT;
const shot = process.env.CVTK_SCREENSHOT;
const expect = JSON.parse(process.env.CVTK_EXPECT || "{}");

test("the report works in a browser", async () => {
  assert.ok(report, "CVTK_REPORT must name the report to test");
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const seen = watch(page);
    await page.goto("file://" + report);
    await page.waitForSelector("#grid .tile");

    assert.equal(await page.locator("#grid .tile").count(), expect.total);
    assert.equal(await page.locator("figure svg").count(), 5, "five inline plots");
    assert.equal((await page.textContent("#ece")).trim(), expect.ece, "calibration error card");

    // Filter to the misclassified images.
    await page.check("#only-wrong");
    assert.equal(await page.locator("#grid .tile").count(), expect.wrong);
    assert.equal(await page.locator("#grid .tile:not(.wrong)").count(), 0);
    await page.uncheck("#only-wrong");

    // Sort by confidence, lowest first, then highest first.
    await page.selectOption("#sort", "conf-asc");
    let conf = await page.locator("#grid .tile").evaluateAll((ts) => ts.map((t) => Number(t.dataset.conf)));
    assert.deepEqual(conf, [...conf].sort((a, b) => a - b));
    await page.selectOption("#sort", "conf-desc");
    conf = await page.locator("#grid .tile").evaluateAll((ts) => ts.map((t) => Number(t.dataset.conf)));
    assert.deepEqual(conf, [...conf].sort((a, b) => b - a));

    // The threshold explorer follows the slider.
    const read = async () => ({
      precision: await page.textContent("#ex-precision"),
      recall: await page.textContent("#ex-recall"),
      kept: Number(await page.textContent("#ex-kept")),
    });
    // It starts, for the first label, at the threshold with the best F1, and says so.
    assert.equal(await page.textContent("#ex-threshold-value"), expect.best);
    assert.deepEqual(await read(), expect.atbest);
    assert.match(await page.textContent("#ex-choice"), new RegExp(`starts at ${expect.best}: the threshold with the best F1`));
    await page.selectOption("#ex-label", "0");
    await page.locator("#ex-threshold").fill("0.5");
    assert.deepEqual(await read(), expect.at050);
    await page.locator("#ex-threshold").fill("0.9");
    assert.deepEqual(await read(), expect.at090);
    assert.equal(await page.textContent("#ex-threshold-value"), "0.90");

    // Top losses: the highest-loss images, highest first; those with a map
    // show it, and a click shows the image without it, and back.
    const top = await page.locator("#top-grid .tile").evaluateAll((ts) => ts.map((t) => Number(t.dataset.id)));
    assert.deepEqual(top, expect.top_losses);
    const withMap = expect.top_losses.find((id) => id % 2 === 0);
    const img = page.locator(`#top-grid img[data-id="${withMap}"]`);
    assert.equal(await img.getAttribute("class"), "map");
    await img.click();
    assert.equal(await page.locator(`#top-grid img[data-id="${withMap}"]`).getAttribute("class"), "plain");
    await page.locator(`#top-grid img[data-id="${withMap}"]`).click();
    assert.equal(await page.locator(`#top-grid img[data-id="${withMap}"]`).getAttribute("class"), "map");
    const noMap = expect.top_losses.find((id) => id % 2 === 1);
    assert.equal(await page.locator(`#top-grid img[data-id="${noMap}"]`).getAttribute("class"), "plain");

    // Most confused: the pairs, most often first; "show" lists that pair's images.
    const pairs = await page.locator("#confused-table tbody tr").evaluateAll((rs) =>
      rs.map((r) => [...r.querySelectorAll("td")].slice(0, 3).map((td) => td.textContent)));
    assert.deepEqual(pairs, expect.confused.map(([t, p, n]) => [t, p, String(n)]));
    await page.locator("#confused-table button").first().click();
    assert.equal(await page.locator("#grid .tile").count(), expect.confused[0][2]);
    assert.match(await page.textContent("#pair"), new RegExp(`${expect.confused[0][0]}, predicted ${expect.confused[0][1]}`));
    await page.click("#clear-pair");
    assert.equal(await page.locator("#grid .tile").count(), expect.total);

    // Result cards: maps on demand.
    assert.equal(await page.locator("#grid img.map").count(), 0, "cards show images until asked");
    await page.check("#show-maps");
    assert.equal(await page.locator("#grid img.map").count(), expect.total / 2, "every card with a map shows it");
    await page.uncheck("#show-maps");

    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual(seen.errors, [], "console errors");
    assert.deepEqual(seen.requests, [], "network requests");
  } finally {
    await browser.close();
  }
});
