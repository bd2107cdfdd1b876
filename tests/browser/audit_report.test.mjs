// The audit report (`cvtk audit --report DIR`) in headless Chromium: it loads
// with no console error and no request beyond itself, its counts equal what
// `--json` printed for the same audit (CVTK_EXPECT: the --json output), every
// finding has its tile with a thumbnail, duplicate sets come leaks first, and
// a full-page screenshot is taken. Run by crates/cvtk-cli/tests/audit.rs with
// CVTK_REPORT (the page) and CVTK_SCREENSHOT.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { launch, watch } from "./chromium.mjs";

const report = process.env.CVTK_REPORT;
const shot = process.env.CVTK_SCREENSHOT;
const expect = JSON.parse(fs.readFileSync(process.env.CVTK_EXPECT, "utf8"));

test("the audit report shows the --json findings", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const seen = watch(page);
    await page.goto("file://" + report);
    await page.waitForSelector("#counts .card");

    const card = async (key) => Number(await page.textContent(`#counts .card[data-key="${key}"] .v`));
    const leaks = expect.duplicates.filter((d) => d.leak).length;
    for (const [key, n] of [
      ["label issues", expect.label_issues.length],
      ["neighbours disagree", expect.neighbour_issues.length],
      ["outliers", expect.outliers.length],
      ["duplicate sets", expect.duplicates.length],
      ["leaks", leaks],
      ["quality issues", expect.quality.length],
      ["unreadable", expect.unreadable.length],
    ]) assert.equal(await card(key), n, key);
    assert.ok(leaks > 0 && expect.label_issues.length > 0, "the audit found too little to test the page on");

    // A tile per finding (up to the page's 200), each with its thumbnail.
    const tiles = (id) => page.locator(`#${id} .gallery .tile`).count();
    assert.equal(await tiles("label-issues"), Math.min(200, expect.label_issues.length));
    assert.equal(await tiles("outliers"), Math.min(200, expect.outliers.length));
    assert.equal(await tiles("quality"), Math.min(200, expect.quality.length));
    assert.equal(await page.locator(".tile .noimg").count(), 0, "a tile without its thumbnail");
    const first = expect.label_issues[0];
    const text = await page.textContent(`#label-issues .tile[data-id="${first.id}"]`);
    assert.ok(text.includes(`labelled ${first.given}`) && text.includes(`looks like ${first.suggested}`), text);

    // Sets side by side, leaks first, with all their members.
    const sets = page.locator("#duplicates .set");
    assert.equal(await sets.count(), Math.min(200, expect.duplicates.length));
    const leakFlags = await sets.evaluateAll((ss) => ss.map((s) => s.classList.contains("leak")));
    assert.deepEqual(leakFlags, [...leakFlags].sort((x, y) => Number(y) - Number(x)), "leaks not first");
    const members = await sets.evaluateAll((ss) => ss.reduce((n, s) => n + s.querySelectorAll(".tile").length, 0));
    assert.equal(members, expect.duplicates.reduce((n, d) => n + d.images.length, 0));
    assert.equal(await page.locator("#labels tbody tr").count(), expect.labels.length);
    assert.ok((await page.textContent("#command")).includes("audit"), "the command that made it");

    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual(seen.errors, [], "console errors");
    assert.deepEqual(seen.requests, [], "the report asked for something beyond itself");
  } finally {
    await browser.close();
  }
});
