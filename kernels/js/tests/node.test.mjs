// The JavaScript build of the kernels under Node.js: k-means on the blobs fixture (init from
// the first 4 rows) against scikit-learn's Lloyd result (driver/tests/fixtures/kmeans_first.json),
// 1e-6 relative on the centroids, exact iterations and labels.
// Needs the Node.js package built into $IFP_JS_NODE_PKG (see .ci/test.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, "../../../driver/tests/fixtures");
const pkgDir = process.env.IFP_JS_NODE_PKG;
assert.ok(pkgDir, "set IFP_JS_NODE_PKG to the wasm-bindgen --target nodejs output directory");
const { fit } = createRequire(import.meta.url)(path.join(pkgDir, "ifp_kernels_js.js"));

export function readCsv(file) {
  const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "");
  const cols = lines[0].split(",").length;
  return { cols, features: Float32Array.from(lines.flatMap((l) => l.split(",").map(Number))) };
}

export function assertClose(what, got, want, rel = 1e-6, abs = 1e-9) {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) <= rel * Math.abs(want[i]) + abs, `${what}[${i}]: got ${g}, want ${want[i]}`));
}

test("k-means (init first) matches scikit-learn's Lloyd on the blobs fixture", () => {
  const want = JSON.parse(readFileSync(path.join(fixtures, "kmeans_first.json"), "utf8"));
  const { cols, features } = readCsv(path.join(fixtures, "blobs.csv"));
  const f = fit("kmeans", ["k", "4", "init", "first", "tol", String(want.tol)], cols, features, new Float32Array(), new Float64Array(), want.max_iter);
  assert.equal(f.algorithm, "kmeans");
  assert.equal(f.iterations, want.n_iter);
  assertClose("centroids", Array.from(f.field("centroids")), want.centroids.flat());
  assert.deepEqual(Array.from(f.fieldShape("centroids")), [4, cols]);
  assert.deepEqual(Array.from(f.assignments), want.labels);
});

test("bad parameters are one readable error naming the value", () => {
  const { cols, features } = readCsv(path.join(fixtures, "blobs.csv"));
  assert.throws(() => fit("kmeans", ["k", "0"], cols, features, new Float32Array(), new Float64Array(), 10), /'k' must be at least 1, got 0/);
  assert.throws(() => fit("svm", [], cols, features, new Float32Array(), new Float64Array(), 10), /unknown algorithm 'svm'/);
});
