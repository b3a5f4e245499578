// The static page (kernels/js/www) in headless Chromium: a small HTTP server (this process,
// 127.0.0.1, a free port) serves the page, its wasm package and the blobs fixture; Chromium
// loads `index.html?csv=...&k=4&init=first` and dumps the DOM once the page is idle. The
// result the page wrote must match scikit-learn's Lloyd result (kmeans_first.json), and the
// canvas must hold pixels of every cluster's colour.
// Needs the web package built into kernels/js/www/pkg and Debian's `chromium` (see .ci/test.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.join(here, "../www");
const fixtures = path.join(here, "../../../driver/tests/fixtures");
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".csv": "text/csv" };

function serve() {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const file = url.pathname.startsWith("/fixtures/")
      ? path.join(fixtures, path.basename(url.pathname))
      : path.join(www, path.normalize(url.pathname === "/" ? "/index.html" : url.pathname));
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

test("the page runs k-means on a CSV and draws every cluster", async () => {
  const want = JSON.parse(await readFile(path.join(fixtures, "kmeans_first.json"), "utf8"));
  const server = await serve();
  const profile = await mkdtemp(path.join(tmpdir(), "ifp-chromium-"));
  try {
    const url = `http://127.0.0.1:${server.address().port}/index.html?csv=/fixtures/blobs.csv&k=4&init=first`;
    const args = [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", `--user-data-dir=${profile}`, "--virtual-time-budget=60000", "--dump-dom", url,
    ];
    const dom = await new Promise((resolve, reject) =>
      execFile(chromium, args, { timeout: 180_000, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${chromium} failed: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
    const m = dom.match(/<pre id="result" data-status="(\w+)">([^<]*)<\/pre>/);
    assert.ok(m, `no result in the page: ${dom.slice(0, 2000)}`);
    assert.equal(m[1], "done", dom.match(/<p id="error"[^>]*>([^<]*)/)?.[1]);
    const got = JSON.parse(m[2]);
    assert.equal(got.rows, 3000);
    assert.equal(got.iterations, want.n_iter);
    const flat = got.centroids.flat();
    want.centroids.flat().forEach((w, i) => assert.ok(Math.abs(flat[i] - w) <= 1e-6 * Math.abs(w) + 1e-9, `centroid value ${i}: got ${flat[i]}, want ${w}`));
    const sizes = [0, 0, 0, 0];
    want.labels.forEach((l) => sizes[l]++);
    assert.deepEqual(got.sizes, sizes);
    got.pixels.forEach((p, c) => assert.ok(p > 0, `cluster ${c} has no pixels on the canvas`));
  } finally {
    server.close();
    await rm(profile, { recursive: true, force: true });
  }
});
