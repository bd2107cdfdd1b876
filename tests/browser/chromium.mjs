// Launches Debian's headless Chromium through playwright-core (which never
// downloads a browser of its own). CHROMIUM overrides the binary's path.
import { chromium } from "playwright-core";

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

// Collects console errors, page errors and every request that leaves the page's
// own file (a self-contained page makes none).
export function watch(page) {
  const errors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith("data:") && !u.startsWith("file:")) requests.push(u);
  });
  return { errors, requests };
}
