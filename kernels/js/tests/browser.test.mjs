// The static page (kernels/js/www) in headless Chromium: a small HTTP server (this process,
// 127.0.0.1, a free port) serves the page, its wasm package and the blobs fixture (also
// rewritten with a header line and semicolons); Chromium loads the page and dumps the DOM
// once it is idle. From a CSV (`?csv=...&k=4&init=first`, with or without `header=1&
// delimiter=;`) the result must match scikit-learn's Lloyd result (kmeans_first.json); with
// no query, the built-in example must be clustered at once: a centroid at each blob's known
// centre, a loss that never rises, and both canvases drawn.
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

function serve(extra) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const file = url.pathname.startsWith("/fixtures/")
      ? path.join(fixtures, path.basename(url.pathname))
      : path.join(www, path.normalize(url.pathname === "/" ? "/index.html" : url.pathname));
    try {
      const body = extra[url.pathname] ?? (await readFile(file));
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Loads `index.html?query` in headless Chromium; returns the result JSON the page wrote. */
async function pageResult(query, extra = {}) {
  const server = await serve(extra);
  const profile = await mkdtemp(path.join(tmpdir(), "ifp-chromium-"));
  try {
    const url = `http://127.0.0.1:${server.address().port}/index.html${query}`;
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
    return JSON.parse(m[2]);
  } finally {
    server.close();
    await rm(profile, { recursive: true, force: true });
  }
}

async function assertMatchesScikitLearn(got) {
  const want = JSON.parse(await readFile(path.join(fixtures, "kmeans_first.json"), "utf8"));
  assert.equal(got.rows, 3000);
  assert.equal(got.iterations, want.n_iter);
  const flat = got.centroids.flat();
  want.centroids.flat().forEach((w, i) => assert.ok(Math.abs(flat[i] - w) <= 1e-6 * Math.abs(w) + 1e-9, `centroid value ${i}: got ${flat[i]}, want ${w}`));
  const sizes = [0, 0, 0, 0];
  want.labels.forEach((l) => sizes[l]++);
  assert.deepEqual(got.sizes, sizes);
  got.pixels.forEach((p, c) => assert.ok(p > 0, `cluster ${c} has no pixels on the canvas`));
}

test("the page runs k-means on a CSV and draws every cluster", async () => {
  await assertMatchesScikitLearn(await pageResult("?csv=/fixtures/blobs.csv&k=4&init=first"));
});

test("the page reads a CSV with a header line and another delimiter", async () => {
  const csv = await readFile(path.join(fixtures, "blobs.csv"), "utf8");
  const cols = csv.split("\n")[0].split(",").length;
  const rewritten = [Array.from({ length: cols }, (_, j) => `x${j}`).join(";"), csv.replaceAll(",", ";")].join("\n");
  const got = await pageResult("?csv=/h/blobs-header.csv&k=4&init=first&header=1&delimiter=;", { "/h/blobs-header.csv": rewritten });
  await assertMatchesScikitLearn(got);
});

test("the page shows the built-in example at once: clusters, centroids and the loss", async () => {
  const got = await pageResult("");
  assert.equal(got.source, "example");
  assert.equal(got.rows, 2000);
  assert.equal(got.k, got.truth.length);
  // 500 points of standard deviation 1 per blob: each mean within 0.25 of its centre.
  for (const [cx, cy] of got.truth) {
    const d = Math.min(...got.centroids.map(([x, y]) => Math.hypot(x - cx, y - cy)));
    assert.ok(d < 0.25, `no centroid near the blob centre (${cx}, ${cy}): nearest at ${d}`);
  }
  got.sizes.forEach((n) => assert.ok(Math.abs(n - 500) <= 25, `cluster sizes ${got.sizes}`));
  // Lloyd's inertia never rises from one iteration to the next.
  assert.equal(got.losses.length, got.iterations);
  got.losses.slice(1).forEach((v, i) => assert.ok(v <= got.losses[i] * (1 + 1e-12), `loss rose at iteration ${i + 2}`));
  assert.ok(got.lossPixels > 0, "the loss chart is empty");
  got.pixels.forEach((p, c) => assert.ok(p > 0, `cluster ${c} has no pixels on the canvas`));
});
