// The page's logic: make the built-in example or parse a CSV, run k-means with the ifp
// kernels (wasm), draw the clusters and the loss per iteration, and write the result
// (centroids, cluster sizes, losses, pixels drawn) as JSON into #result, with
// data-status="done" (or "error").
import init, { fit } from "./pkg/ifp_kernels_js.js";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const LOSS_COLOUR = "#e0218a";

/** The delimiter a CSV option names: a character, or any run of blanks for "space". */
function splitter(delimiter) {
  if (delimiter === "tab" || delimiter === "\t") return (line) => line.split("\t");
  if (delimiter === "space" || delimiter === " ") return (line) => line.trim().split(/\s+/);
  return (line) => line.split(delimiter);
}

/** Parses a numeric CSV into { rows, cols, features: Float32Array }; with `header`, the first
 *  line is skipped. Errors name the line of the file (1-based, counting the header). */
export function parseCsv(text, { header = false, delimiter = "," } = {}) {
  const split = splitter(delimiter);
  const lines = text.split(/\r?\n/).map((l, i) => [i + 1, l]).filter(([, l]) => l.trim() !== "");
  if (header) lines.shift();
  if (lines.length === 0) throw new Error("the CSV holds no rows");
  const cols = split(lines[0][1]).length;
  const features = new Float32Array(lines.length * cols);
  lines.forEach(([row, line], r) => {
    const cells = split(line);
    if (cells.length !== cols) throw new Error(`row ${row} has ${cells.length} columns, expected ${cols}`);
    cells.forEach((c, j) => {
      const v = Number(c);
      if (c.trim() === "" || !Number.isFinite(v)) {
        const hint = r === 0 && !header ? " (a header line? tick \"first line is a header\")" : "";
        throw new Error(`row ${row}, column ${j + 1}: '${c}' is not a number${hint}`);
      }
      features[r * cols + j] = v;
    });
  });
  return { rows: lines.length, cols, features };
}

/** A seeded 32-bit generator (mulberry32): the same example on every load. */
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The built-in example: 4 Gaussian blobs (standard deviation 1) of 500 points each around
 *  known centres, in 2-D, interleaved; `truth` holds the centres. */
export function exampleBlobs(seed = 7) {
  const rand = mulberry32(seed);
  const truth = [[-6, -4], [6, -4], [-4, 6], [5, 5]];
  const perBlob = 500;
  const features = new Float32Array(truth.length * perBlob * 2);
  for (let i = 0; i < truth.length * perBlob; i++) {
    const [cx, cy] = truth[i % truth.length];
    // Box-Muller: two normal deviates from two uniform ones.
    const r = Math.sqrt(-2 * Math.log(1 - rand())), a = 2 * Math.PI * rand();
    features[2 * i] = cx + r * Math.cos(a);
    features[2 * i + 1] = cy + r * Math.sin(a);
  }
  return { rows: truth.length * perBlob, cols: 2, features, truth };
}

/** Draws the loss per iteration as a line; returns the pixels of the line's colour. */
function drawLoss(losses) {
  const canvas = $("loss");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const [left, right, top, bottom] = [56, canvas.width - 8, 10, canvas.height - 24];
  const lo = Math.min(...losses), hi = Math.max(...losses);
  const sx = (i) => left + (losses.length > 1 ? (i / (losses.length - 1)) * (right - left) : (right - left) / 2);
  const sy = (v) => bottom - ((v - lo) / (hi - lo || 1)) * (bottom - top);
  ctx.strokeStyle = "#888888";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, top); ctx.lineTo(left, bottom); ctx.lineTo(right, bottom);
  ctx.stroke();
  ctx.fillStyle = "#000000";
  ctx.font = "10px sans-serif";
  ctx.fillText(hi.toPrecision(3), 2, top + 8);
  ctx.fillText(lo.toPrecision(3), 2, bottom);
  ctx.fillText(`iteration 1 … ${losses.length}`, left, canvas.height - 6);
  ctx.strokeStyle = LOSS_COLOUR;
  ctx.lineWidth = 2;
  ctx.beginPath();
  losses.forEach((v, i) => (i === 0 ? ctx.moveTo(sx(i), sy(v)) : ctx.lineTo(sx(i), sy(v))));
  if (losses.length === 1) ctx.lineTo(sx(0) + 1, sy(losses[0]));
  ctx.stroke();
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(LOSS_COLOUR.slice(i, i + 2), 16));
  let pixels = 0;
  for (let i = 0; i < img.length; i += 4) if (img[i] === r && img[i + 1] === g && img[i + 2] === b) pixels++;
  return pixels;
}

function draw(data, fit, k) {
  const canvas = $("plot");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const { rows, cols, features } = data;
  const x = (r) => features[r * cols], y = (r) => (cols > 1 ? features[r * cols + 1] : 0);
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let r = 0; r < rows; r++) {
    x0 = Math.min(x0, x(r)); x1 = Math.max(x1, x(r));
    y0 = Math.min(y0, y(r)); y1 = Math.max(y1, y(r));
  }
  const pad = 12;
  const sx = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (canvas.width - 2 * pad);
  const sy = (v) => canvas.height - pad - ((v - y0) / (y1 - y0 || 1)) * (canvas.height - 2 * pad);
  const labels = fit.assignments;
  for (let r = 0; r < rows; r++) {
    ctx.fillStyle = COLOURS[labels[r] % COLOURS.length];
    ctx.fillRect(Math.round(sx(x(r))) - 1, Math.round(sy(y(r))) - 1, 3, 3);
  }
  const centroids = fit.field("centroids");
  ctx.strokeStyle = "#000000";
  ctx.lineWidth = 2;
  for (let c = 0; c < k; c++) {
    const cx = sx(centroids[c * cols]), cy = sy(cols > 1 ? centroids[c * cols + 1] : 0);
    ctx.beginPath();
    ctx.moveTo(cx - 6, cy - 6); ctx.lineTo(cx + 6, cy + 6);
    ctx.moveTo(cx + 6, cy - 6); ctx.lineTo(cx - 6, cy + 6);
    ctx.stroke();
  }
  // Read the drawing back: pixels of each cluster's colour (what a viewer sees).
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = COLOURS.slice(0, k).map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const pixels = new Array(k).fill(0);
  for (let i = 0; i < img.length; i += 4) {
    const c = rgb.findIndex(([r, g, b]) => img[i] === r && img[i + 1] === g && img[i + 2] === b);
    if (c >= 0) pixels[c]++;
  }
  return pixels;
}

function run(data, source) {
  $("error").hidden = true;
  const k = Number($("k").value);
  const initMethod = $("init").value;
  const maxIter = Number($("max-iter").value);
  $("status").textContent = `running k-means (k = ${k}, init ${initMethod}) on ${data.rows} × ${data.cols}…`;
  const t0 = performance.now();
  const f = fit("kmeans", ["k", String(k), "init", initMethod], data.cols, data.features, new Float32Array(), new Float64Array(), maxIter);
  const ms = performance.now() - t0;
  const sizes = new Array(k).fill(0);
  for (const a of f.assignments) sizes[a]++;
  const pixels = draw(data, f, k);
  const losses = Array.from(f.losses);
  const lossPixels = drawLoss(losses);
  const centroids = Array.from(f.field("centroids"));
  const result = {
    source, rows: data.rows, cols: data.cols, k, init: initMethod, iterations: f.iterations, converged: f.converged,
    inertia: losses[losses.length - 1], losses, milliseconds: ms,
    centroids: Array.from({ length: k }, (_, c) => centroids.slice(c * data.cols, (c + 1) * data.cols)),
    sizes, pixels, lossPixels, truth: data.truth ?? null,
  };
  $("result").textContent = JSON.stringify(result);
  $("result").dataset.status = "done";
  const what = source === "example" ? `built-in example: ${data.truth.length} seeded blobs, ${data.rows} points` : source;
  $("plot-caption").textContent = `${what}: clusters (colours) and centroids (×)`;
  $("status").textContent = `${what}: ${f.iterations} iterations (${f.converged ? "converged" : "max-iter reached"}) in ${ms.toFixed(1)} ms`;
}

function fail(e) {
  $("error").textContent = `error: ${e.message ?? e}`;
  $("error").hidden = false;
  $("result").dataset.status = "error";
}

async function main() {
  const q = new URLSearchParams(location.search);
  for (const [param, id] of [["k", "k"], ["init", "init"], ["delimiter", "delimiter"]]) {
    if (q.has(param)) $(id).value = q.get(param);
  }
  if (q.has("header")) $("header").checked = q.get("header") === "1";
  await init();
  const options = () => ({ header: $("header").checked, delimiter: $("delimiter").value });
  let data = null, source = null;
  const guarded = (f) => async (...a) => { try { await f(...a); } catch (e) { fail(e); } };
  const example = () => { data = exampleBlobs(); source = "example"; run(data, source); };
  $("run").onclick = guarded(() => data && run(data, source));
  $("example").onclick = guarded(example);
  let file = null;
  const fromFile = async () => {
    data = parseCsv(await file.text(), options());
    source = file.name;
    run(data, source);
  };
  $("file").onchange = guarded(async (ev) => { file = ev.target.files[0]; await fromFile(); });
  // A changed CSV option reparses the chosen file.
  $("header").onchange = $("delimiter").onchange = guarded(async () => { if (file) await fromFile(); });
  if (q.has("csv")) {
    const resp = await fetch(q.get("csv"));
    if (!resp.ok) throw new Error(`cannot fetch ${q.get("csv")}: HTTP ${resp.status}`);
    data = parseCsv(await resp.text(), options());
    source = q.get("csv");
    run(data, source);
  } else {
    example();
  }
}

main().catch(fail);
