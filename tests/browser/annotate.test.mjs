// The annotation page (`cvtk annotate`) in headless Chromium, against a running
// server: paging, filter, "most doubtful first", a label changed with the mouse
// and one with a key, both kept after a reload and on disk, undo, exclude, the
// large view, a new label, a read-only manifest (clear error, nothing lost), and
// a screenshot; before that, that the header and the pager count the same
// images and that "saved" appears only after a save (both leave the manifest as
// they found it). Run by crates/cvtk-cli/tests/annotate.rs, which starts
// `cvtk annotate --model ...` and passes CVTK_ANNOTATE_URL, CVTK_MANIFEST,
// CVTK_SCREENSHOT and CVTK_EXPECT ({"total": N, "labels": [...]}). The last line
// of stdout, `RESULT {...}`, tells it what was changed so it can check the
// manifest through cvtk itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { launch, watch } from "./chromium.mjs";

const url = process.env.CVTK_ANNOTATE_URL;
const manifestPath = process.env.CVTK_MANIFEST;
const shot = process.env.CVTK_SCREENSHOT;
const expect = JSON.parse(process.env.CVTK_EXPECT || "{}");

const manifest = () => JSON.parse(fs.readFileSync(manifestPath, "utf8"));
const entry = (id) => manifest().images.find((i) => i.id === id);
const card = (page, id) => page.locator(`.card[data-id="${id}"]`);

async function savedLabel(page, id, label) {
  await page.waitForFunction(
    ([id, label]) => document.querySelector(`.card[data-id="${id}"]`)?.dataset.label === label,
    [id, label],
  );
}

// Clicks the exclude box of image `id` (the page says "saving…" at once) and
// waits for the server's answer, which must start with `status`.
async function toggleExcluded(page, id, status) {
  await card(page, id).locator("input.exclude").click();
  await page.waitForFunction(() => document.querySelector("#status").textContent !== "saving…");
  assert.ok((await page.textContent("#status")).startsWith(status), await page.textContent("#status"));
}

test("the header and the pager count the same images", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watch(page);
    const original = manifest();
    await page.goto(url);
    await page.waitForSelector(".card");
    const n = expect.total, labels = expect.labels.length, pages = Math.ceil(n / 48), first = Math.min(48, n);
    const header = () => page.textContent("#summary");
    const pager = () => page.textContent("#page-info");
    // The header's count of images and the pager's (its last number), under "all images".
    const agree = async () => {
      const h = await header(), p = await pager();
      assert.equal(Number(h.match(/^(\d+) images/)[1]), Number(p.match(/(\d+)(?: images\))?$/)[1]), `header "${h}", pager "${p}"`);
    };
    await agree();

    // One image excluded: still shown under "all images", so still counted in both.
    const id = Number(await page.locator(".card").first().getAttribute("data-id"));
    await toggleExcluded(page, id, "saved:");
    assert.equal(entry(id).excluded, true);
    await agree();
    assert.equal(await header(), `${n} images (1 excluded) · ${labels} labels`);
    assert.equal(await pager(), `page 1 of ${pages} · images 1–${first} of ${n}`);
    // As a person sees it: the first image excluded (dimmed), both counts above.
    await page.waitForFunction(() => [...document.querySelectorAll(".card img")].slice(0, 18).every((i) => i.complete && i.naturalWidth > 0));
    if (shot) await page.screenshot({ path: shot.replace(/\.png$/, "-counts.png") });
    await page.click("#next-page");
    assert.equal(await pager(), `page ${pages} of ${pages} · images ${48 * (pages - 1) + 1}–${n} of ${n}`);
    await page.click("#prev-page");

    // A filter says what it counts, and agrees with its own entry in the menu.
    const label = expect.labels[1];
    const option = await page.locator(`#filter option[value="label:${label}"]`).textContent();
    const inLabel = Number(option.match(/\((\d+)\)$/)[1]);
    await page.selectOption("#filter", "label:" + label);
    assert.equal(await pager(), `page 1 of 1 · images 1–${inLabel} of ${inLabel} labelled ${label}`);
    assert.equal(await page.locator(".card").count(), inLabel);
    await page.selectOption("#filter", "excluded");
    assert.equal(await pager(), "page 1 of 1 · image 1 of 1 excluded");
    await page.selectOption("#filter", "all");
    assert.equal(await page.locator("#filter option[value=all]").textContent(), `all images (${n})`);

    // Brought back: the manifest is as it was.
    await toggleExcluded(page, id, "saved:");
    assert.deepEqual(manifest(), original);
    await agree();
    assert.equal(await header(), `${n} images · ${labels} labels`);
    assert.deepEqual(seen.errors, [], "no console errors");
  } finally {
    await browser.close();
  }
});

test("the page says saved only after a save worked", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watch(page);
    const original = manifest();
    const status = () => page.textContent("#status");
    const loaded = async () => {
      await page.waitForSelector(".card");
      await page.waitForFunction(() => document.querySelector("#status").textContent !== "loading…");
    };
    await page.goto(url);
    await loaded();
    // Nothing was saved yet, by this page or at load.
    assert.equal(await status(), "no changes yet");
    assert.doesNotMatch(await status(), /saved/);
    await page.reload();
    await loaded();
    assert.equal(await status(), "no changes yet");

    // A save that works says so.
    const id = Number(await page.locator(".card").first().getAttribute("data-id"));
    await toggleExcluded(page, id, "saved:");
    assert.equal(entry(id).excluded, true);
    assert.equal(await page.getAttribute("#status", "class"), "saved");

    // A save that fails says so, with the reason, and never "saved".
    const before = fs.readFileSync(manifestPath);
    fs.chmodSync(manifestPath, 0o444);
    try {
      await toggleExcluded(page, id, "not saved");
      assert.equal(await status(), "not saved");
      assert.equal(await page.getAttribute("#status", "class"), "failed");
      assert.match(await page.textContent("#error"), /read-only/);
      assert.deepEqual(fs.readFileSync(manifestPath), before, "nothing written");
    } finally {
      fs.chmodSync(manifestPath, 0o644);
    }

    // Brought back: the manifest is as it was, and the page says it saved.
    await toggleExcluded(page, id, "saved:");
    assert.deepEqual(manifest(), original);
    assert.equal(await page.isVisible("#error"), false);
    assert.deepEqual(seen.errors.filter((e) => !/status of 403/.test(e)), [], "no console errors but the refused save");
  } finally {
    await browser.close();
  }
});

test("the annotation page works in a browser", async () => {
  assert.ok(url && manifestPath, "CVTK_ANNOTATE_URL and CVTK_MANIFEST must be set");
  const browser = await launch();
  const result = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watch(page);
    await page.goto(url);
    await page.waitForSelector(".card");

    // A paged grid of every image.
    assert.equal(await page.locator(".card").count(), Math.min(48, expect.total));
    const pages = Math.ceil(expect.total / 48);
    assert.equal(await page.textContent("#page-info"), `page 1 of ${pages} · images 1–48 of ${expect.total}`);
    await page.click("#next-page");
    assert.equal(await page.locator(".card").count(), expect.total - 48 * (pages - 1) || 48);
    await page.click("#prev-page");

    // Filter by label.
    const other = expect.labels[1];
    await page.selectOption("#filter", "label:" + other);
    const shown = await page.locator(".card").evaluateAll((cs) => cs.map((c) => c.dataset.label));
    assert.ok(shown.length > 0 && shown.every((l) => l === other), JSON.stringify(shown));
    await page.selectOption("#filter", "all");

    // Most doubtful first: doubt never rises, disagreements lead.
    await page.selectOption("#order", "doubt");
    const doubts = await page.locator(".card").evaluateAll((cs) => cs.map((c) => Number(c.dataset.doubt)));
    assert.deepEqual(doubts, [...doubts].sort((a, b) => b - a));
    const disagree = await page.locator(".card .pred.disagree").count();
    assert.ok(disagree > 0, "the planted label errors should disagree with the model");
    assert.equal(await page.locator(".card").first().locator(".pred.disagree").count(), 1);

    // The screenshot: as a person first sees it, most doubtful first, first card selected.
    await page.locator(".card").first().locator(".name").click();
    await page.waitForFunction(() => [...document.querySelectorAll(".card img")].slice(0, 18).every((i) => i.complete && i.naturalWidth > 0));
    if (shot) await page.screenshot({ path: shot });

    // 1. The mouse: give the most doubtful image the model's label.
    const first = page.locator(".card").first();
    const id1 = Number(await first.getAttribute("data-id"));
    const predicted = (await first.locator(".pred").textContent()).replace(/^model: /, "").replace(/ [\d.]+%$/, "");
    await first.locator("select.label-select").selectOption(predicted);
    await savedLabel(page, id1, predicted);
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("saved:"));
    assert.equal(entry(id1).labels[0], predicted, "saved to the manifest at once");
    result.mouse = { id: id1, label: predicted };

    // 2. A key: select the second card and press the digit of another label.
    const second = page.locator(".card").nth(1);
    const id2 = Number(await second.getAttribute("data-id"));
    const old2 = await second.getAttribute("data-label");
    const k = expect.labels.findIndex((l) => l !== old2);
    await second.locator(".name").click();
    assert.equal(await page.locator(".card.selected").getAttribute("data-id"), String(id2));
    await page.keyboard.press(String(k + 1));
    await savedLabel(page, id2, expect.labels[k]);
    assert.equal(entry(id2).labels[0], expect.labels[k]);

    // 3. Reload: both changes are kept.
    await page.reload();
    await page.waitForSelector(".card");
    await page.selectOption("#page-size", "192");
    assert.equal(await card(page, id1).getAttribute("data-label"), predicted);
    assert.equal(await card(page, id2).getAttribute("data-label"), expect.labels[k]);

    // 4. Undo (key u) takes back the last change only.
    await page.keyboard.press("u");
    await savedLabel(page, id2, old2);
    assert.equal(entry(id2).labels[0], old2);
    assert.equal(entry(id1).labels[0], predicted);
    result.undone = { id: id2, label: old2 };

    // 5. Exclude (key x) the selected image, shown dimmed and saved.
    const third = page.locator(".card").nth(2);
    const id3 = Number(await third.getAttribute("data-id"));
    await third.locator(".name").click();
    await page.keyboard.press("x");
    await page.waitForFunction((id) => document.querySelector(`.card[data-id="${id}"]`)?.dataset.excluded === "true", id3);
    assert.equal(entry(id3).excluded, true);
    result.excluded = id3;

    // 6. The large view: Enter opens it, arrows move, Esc closes.
    await page.keyboard.press("Enter");
    await page.waitForSelector("#viewer:not([hidden])");
    await page.waitForFunction(() => document.querySelector("#viewer-img").naturalWidth > 0);
    const before = await page.textContent("#viewer-info");
    assert.match(before, / 3 of \d+$/);
    await page.keyboard.press("ArrowRight");
    assert.match(await page.textContent("#viewer-info"), / 4 of \d+$/);
    const id4 = Number(await page.locator(".card.selected").getAttribute("data-id"));
    const j = expect.labels.findIndex((l) => l !== entry(id4).labels[0]);
    await page.click(`#viewer-labels button:nth-child(${j + 1})`);
    await savedLabel(page, id4, expect.labels[j]);
    assert.match(await page.textContent("#viewer-info"), new RegExp(` · ${expect.labels[j]} · `));
    await page.keyboard.press("Escape");
    assert.equal(await page.isVisible("#viewer"), false);
    result.viewer = { id: id4, label: expect.labels[j] };

    // 7. A new label, offered everywhere at once.
    await page.fill("#new-label", "unsure");
    await page.click("#add-label-form button");
    await page.waitForFunction(() => [...document.querySelectorAll(".card select option")].some((o) => o.value === "unsure"));
    assert.ok(manifest().labels.includes("unsure"));

    // 8. A read-only manifest: a clear error on the page, the card shows the
    //    saved label again, and the file is untouched. Then it works again.
    const fifth = page.locator(".card").nth(4);
    const id5 = Number(await fifth.getAttribute("data-id"));
    const old5 = await fifth.getAttribute("data-label");
    const saved = fs.readFileSync(manifestPath);
    fs.chmodSync(manifestPath, 0o444);
    try {
      await fifth.locator("select.label-select").selectOption("unsure");
      await page.waitForSelector("#error:not([hidden])");
      assert.match(await page.textContent("#error"), /read-only/);
      await page.waitForFunction(
        ([id, l]) => document.querySelector(`.card[data-id="${id}"] select`).value === l,
        [id5, old5],
      );
      assert.deepEqual(fs.readFileSync(manifestPath), saved, "nothing written");
    } finally {
      fs.chmodSync(manifestPath, 0o644);
    }
    await card(page, id5).locator("select.label-select").selectOption("unsure");
    await savedLabel(page, id5, "unsure");
    assert.equal(await page.isVisible("#error"), false, "the error clears after a good save");
    result.after_read_only = { id: id5, label: "unsure" };

    // Chromium logs the refused save (403) of step 8; nothing else may fail.
    const refused = seen.errors.filter((e) => /status of 403/.test(e));
    assert.equal(refused.length, 1, JSON.stringify(seen.errors));
    assert.deepEqual(seen.errors.filter((e) => !refused.includes(e)), [], "no other console errors");
    const foreign = seen.requests.filter((r) => !r.startsWith(url));
    assert.deepEqual(foreign, [], "no request leaves the server");
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(result));
});
