// The annotation page's map on the large view, in headless Chromium: `m`
// shows the model's map over the selected image (the overlay cvtk explain
// draws), the map stays on while moving to the next image, and `m` again
// shows the plain image. Run by crates/cvtk-cli/tests/explain.rs, which starts
// `cvtk annotate --model` and passes CVTK_ANNOTATE_URL and CVTK_SCREENSHOT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, watch } from "./chromium.mjs";

const url = process.env.CVTK_ANNOTATE_URL;
const shot = process.env.CVTK_SCREENSHOT;

test("m toggles the model's map on the large view", async () => {
  assert.ok(url, "CVTK_ANNOTATE_URL must name the page");
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    const seen = watch(page);
    await page.goto(url);
    await page.waitForSelector(".card");
    assert.match(await page.textContent("#help"), /m.*map/);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#viewer:not([hidden])");
    const src = () => page.getAttribute("#viewer-img", "src");
    const loaded = () => page.waitForFunction(() => {
      const img = document.querySelector("#viewer-img");
      return img.complete && img.naturalWidth > 0;
    });
    assert.match(await src(), /\/file$/);
    await page.keyboard.press("m");
    assert.match(await src(), /\/api\/images\/\d+\/explain$/);
    await loaded();
    // The overlay is wider than the image: it carries the colour scale.
    const ratio = await page.evaluate(() => {
      const img = document.querySelector("#viewer-img");
      return img.naturalWidth / img.naturalHeight;
    });
    assert.ok(ratio > 1.1, `the overlay with its colour scale, not the square image (ratio ${ratio})`);
    assert.match(await page.textContent("#status"), /showing the model's map/);
    await page.screenshot({ path: shot });
    const first = await src();
    await page.keyboard.press("ArrowRight");
    assert.match(await src(), /\/explain$/, "the map stays on for the next image");
    assert.notEqual(await src(), first);
    await loaded();
    await page.keyboard.press("m");
    assert.match(await src(), /\/file$/);
    assert.deepEqual(seen.errors, [], "console errors");
  } finally {
    await browser.close();
  }
});
