// The page's logic: parse the CSV, run k-means with the ifp kernels (wasm), draw the
// clusters on the canvas and write the result (centroids, cluster sizes, pixels drawn per
// cluster) as JSON into #result, with data-status="done" (or "error").
import init, { fit } from "./pkg/ifp_kernels_js.js";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** Parses a headerless numeric CSV into { rows, cols, features: Float32Array }. */
export function parseCsv(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new Error("the CSV is empty");
  const cols = lines[0].split(",").length;
  const features = new Float32Array(lines.length * cols);
  lines.forEach((line, r) => {
    const cells = line.split(",");
    if (cells.length !== cols) throw new Error(`row ${r + 1} has ${cells.length} columns, expected ${cols}`);
    cells.forEach((c, j) => {
      const v = Number(c);
      if (c.trim() === "" || !Number.isFinite(v)) throw new Error(`row ${r + 1}, column ${j + 1}: '${c}' is not a number`);
      features[r * cols + j] = v;
    });
  });
  return { rows: lines.length, cols, features };
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

function run(data) {
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
  const centroids = Array.from(f.field("centroids"));
  const result = {
    rows: data.rows, cols: data.cols, k, init: initMethod, iterations: f.iterations, converged: f.converged,
    inertia: f.losses[f.losses.length - 1], milliseconds: ms,
    centroids: Array.from({ length: k }, (_, c) => centroids.slice(c * data.cols, (c + 1) * data.cols)),
    sizes, pixels,
  };
  $("result").textContent = JSON.stringify(result);
  $("result").dataset.status = "done";
  $("status").textContent = `${f.iterations} iterations (${f.converged ? "converged" : "max-iter reached"}) in ${ms.toFixed(1)} ms`;
}

function fail(e) {
  $("error").textContent = `error: ${e.message ?? e}`;
  $("error").hidden = false;
  $("result").dataset.status = "error";
}

async function main() {
  await init();
  $("status").textContent = "choose a CSV file";
  let data = null;
  $("run").onclick = () => { try { if (data) run(data); } catch (e) { fail(e); } };
  $("file").onchange = async (ev) => {
    try {
      data = parseCsv(await ev.target.files[0].text());
      $("run").disabled = false;
      run(data);
    } catch (e) { fail(e); }
  };
  const q = new URLSearchParams(location.search);
  if (q.has("k")) $("k").value = q.get("k");
  if (q.has("init")) $("init").value = q.get("init");
  if (q.has("csv")) {
    const resp = await fetch(q.get("csv"));
    if (!resp.ok) throw new Error(`cannot fetch ${q.get("csv")}: HTTP ${resp.status}`);
    data = parseCsv(await resp.text());
    $("run").disabled = false;
    run(data);
  }
}

main().catch(fail);
