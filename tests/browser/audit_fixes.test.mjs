// The fix loop of `cvtk audit` in the annotation page, in headless Chromium,
// against a running `cvtk annotate` on a manifest that holds an audit's
// findings: the audit filters count what the manifest records; under "label
// issues" the first image's suggested label is shown and accepted with `a`;
// under "duplicate sets" a set's images are side by side, a leak is marked,
// and `d` keeps the selected image and excludes the other copies; both are
// on disk at once. Run by crates/cvtk-cli/tests/audit.rs with
// CVTK_ANNOTATE_URL, CVTK_MANIFEST and CVTK_SCREENSHOT. The last line of
// stdout, `RESULT {...}`, says what was changed, for the Rust side to check
// through cvtk's own manifest reader.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { launch, watch } from "./chromium.mjs";

const url = process.env.CVTK_ANNOTATE_URL;
const manifestPath = process.env.CVTK_MANIFEST;
const shot = process.env.CVTK_SCREENSHOT;

const manifest = () => JSON.parse(fs.readFileSync(manifestPath, "utf8"));
const entry = (id) => manifest().images.find((i) => i.id === id);
const cardIds = (page) => page.$$eval(".card", (cs) => cs.map((c) => Number(c.dataset.id)));

async function show(page, filter) {
  await page.selectOption("#filter", filter);
  await page.waitForSelector(".card");
}

async function settled(page) {
  await page.waitForFunction(() => !document.querySelector("#status").textContent.endsWith("…"));
}

test("audit findings are filtered, a suggestion accepted and extra copies excluded", async () => {
  const browser = await launch();
  const result = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watch(page);
    await page.goto(url);
    await page.waitForSelector(".card");
    const findings = manifest().findings;
    assert.ok(findings, "the manifest holds no findings: was it audited?");
    const withKind = (kind) =>
      Object.entries(findings.images).filter(([, fs]) => fs.some((f) => f.kind === kind)).map(([id]) => Number(id));

    // Each audit filter counts what the manifest records, and shows those images.
    for (const kind of ["label_issue", "outlier", "duplicate", "quality"]) {
      const option = await page.textContent(`#filter option[value="finding:${kind}"]`);
      const n = withKind(kind).length;
      assert.ok(option.includes(kind === "duplicate" ? `${n} images` : `(${n})`), `${option} vs ${n} in the manifest`);
    }
    const issues = withKind("label_issue");
    assert.ok(issues.length > 0, "no label issue to accept");
    await show(page, "finding:label_issue");
    assert.deepEqual((await cardIds(page)).sort((a, b) => a - b), issues.sort((a, b) => a - b));

    // The first one: its suggestion on the card, accepted with `a`.
    const id = (await cardIds(page))[0];
    const suggested = findings.images[id].find((f) => f.kind === "label_issue").suggested;
    const before = entry(id).labels[0];
    assert.notEqual(before, suggested);
    const text = await page.textContent(`.card[data-id="${id}"] .finding`);
    assert.ok(text.includes(`looks like ${suggested}`), text);
    await page.click(`.card[data-id="${id}"] .name`);
    await page.keyboard.press("a");
    await page.waitForFunction(
      ([id, l]) => document.querySelector(`.card[data-id="${id}"]`)?.dataset.label === l,
      [id, suggested],
    );
    await settled(page);
    assert.deepEqual(entry(id).labels, [suggested], "accepted, but not on disk");
    assert.ok((await page.textContent(`.card[data-id="${id}"] .finding`)).startsWith("✓ now"));
    result.accepted = { id, label: suggested, was: before };

    // Duplicate sets side by side; the leak marked; `d` keeps one, excludes the rest.
    await show(page, "finding:leak");
    const leakIds = await cardIds(page);
    assert.ok(leakIds.length >= 2, "no leak shown");
    assert.ok((await page.textContent(`.card[data-id="${leakIds[0]}"]`)).includes("LEAK: train and test"));
    await show(page, "finding:duplicate");
    const sets = findings.duplicate_sets;
    const order = await cardIds(page);
    const setOf = (i) => sets.findIndex((s) => s.ids.includes(i));
    for (let i = 1; i < order.length; i++) assert.ok(setOf(order[i - 1]) <= setOf(order[i]), "sets not together");
    const set = sets[setOf(leakIds[0])];
    const keep = set.ids[set.ids.length - 1];
    await page.click(`.card[data-id="${keep}"] .name`);
    await page.keyboard.press("d");
    await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("kept "));
    const others = set.ids.filter((i) => i !== keep);
    for (const other of others) assert.equal(entry(other).excluded, true, `copy ${other} not excluded on disk`);
    assert.notEqual(entry(keep).excluded, true, "the kept image is excluded");
    result.kept = keep;
    result.excluded = others;

    await page.screenshot({ path: shot, fullPage: false });
    assert.deepEqual(seen.errors, [], "console errors");
  } finally {
    await browser.close();
  }
  console.log("RESULT " + JSON.stringify(result));
});
