//! Hamerly's step: per-row distance bounds, moved by the centroids' movement, skip the rows
//! whose assignment they settle; the others are scored as Lloyd's step scores them.

use super::lloyd::scan_block;
use super::scan::{Centroids, Margin, ROWS_PER_BLOCK};
use super::shard::{add_to, block_rows, block_sums, cluster_sums, Grouping, KMeansShard};
use crate::simd::max_f64;

/// Per-row distance bounds (Hamerly 2010) and per-block statistics, valid for the centroids
/// of the previous step.
///
/// Per row an upper bound on `‖x_i − c_a‖` for the row's assigned centroid `a` and a lower
/// bound on `‖x_i − c_j‖` for every other `j`, in exact arithmetic on the f64 centroids (stored
/// as of the row's block's last rebuild, see [`Block`]). A step keeps a row's assignment
/// without scoring it only when the bounds prove that the full scan would pick the same
/// centroid (its exact score below every other's by over twice the scan's worst-case rounding
/// error, [`Margin`]: so the f32 scores' argmin, and the f64 decision of a row near a tie);
/// any row the bounds do not settle is scored exactly as Lloyd's scan scores it.
pub(super) struct Bounds {
    /// The centroids the bounds refer to (`k × d`).
    prev: Vec<f64>,
    /// The shard's rows when the bounds were made.
    rows: usize,
    /// Per block of [`block_rows`] rows, its rows' bounds and sums.
    blocks: Vec<Block>,
    /// Score every row in the next step (Lloyd's full scan): the bounds settled fewer than
    /// [`SCAN_ALL_BELOW`] of the rows last time. Then only the sample blocks' bounds (every
    /// [`SAMPLE_EVERY`]-th block) are sure to be valid.
    scan_all_next: bool,
    /// Only the sample blocks' bounds are valid: the last full scan gave the other blocks
    /// Lloyd's scan alone.
    stale: bool,
    /// The share of rows the last step's bounds settled (in a full scan, its sample's).
    last_share: f64,
}

/// One block's rows' bounds and sums, allocated when the block first gets bounds: a full scan
/// that builds none writes only its sample blocks' (allocating every block's up front cost a
/// fresh shard ~4,700 page faults, ~12 ms per million rows, in the first step).
///
/// The rows' bounds are stored as of the block's last rebuild: a step adds each centroid's
/// movement to the block's `grown` and `dropped` instead of to every row's bounds, so that a
/// step writes only the bounds of the rows it tightens or scores (stored back-projected, as
/// if made at the rebuild). With every row's moved bounds written back, a step that settles
/// every row ran 120 wasm instructions per row, now 60 (7.8 against 6.4 ms per million rows,
/// the fastest of 7 runs).
#[derive(Default)]
struct Block {
    /// Per row, `upper[i] + grown[a] ≥ ‖x_i − c_a‖` and `lower[i] − dropped[a] ≤ ‖x_i − c_j‖`
    /// for every other `j`, with `a` the row's centroid (`lower[i]` is never negative).
    upper: Vec<f64>,
    lower: Vec<f64>,
    /// Per centroid, how far the upper bounds of its rows grew since the block's bounds were
    /// rebuilt (its movements, rounded up) and how far the lower bounds dropped (the largest
    /// movement among the other centroids, per step).
    grown: Vec<f64>,
    dropped: Vec<f64>,
    /// `[sums (k·d) | counts (k) | sumsq (k)]` of its rows under their current assignment, so
    /// that blocks (or clusters of a block) whose rows kept their centroid need no new pass
    /// over their rows.
    sums: Vec<f64>,
}

impl Block {
    /// The block's storage for `rows` rows and partials of `stride` values, allocated (zero)
    /// on first use and kept as it is after.
    fn ready(&mut self, rows: usize, k: usize, stride: usize) -> &mut Self {
        if self.sums.len() != stride || self.upper.len() != rows {
            (self.upper, self.lower, self.sums) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; stride]);
            (self.grown, self.dropped) = (vec![0.0; k], vec![0.0; k]);
        }
        self
    }

    /// Adds this step's movements to the block's.
    fn advance(&mut self, moves: &Moves) {
        for (a, (g, dr)) in self.grown.iter_mut().zip(self.dropped.iter_mut()).enumerate() {
            *g = (*g + moves.mv[a]) * (1.0 + 1e-15);
            *dr = (*dr + moves.drop(a)) * (1.0 + 1e-15);
        }
    }

    /// Row `i`'s lower bound now, for centroid `a`.
    #[inline(always)]
    fn lower(&self, i: usize, a: usize) -> f64 {
        moved_lower(self.lower[i], self.dropped[a])
    }

    /// Stores bounds `u` and `lo`, valid now, for row `i` of centroid `a`, back-projected so
    /// that [`moved_upper`] and [`moved_lower`] with the block's `grown` and `dropped` give
    /// them back (or looser) now and move them from here on.
    #[inline(always)]
    fn store(&mut self, i: usize, a: usize, u: f64, lo: f64) {
        self.store_upper(i, a, u);
        let dr = self.dropped[a];
        self.lower[i] = (lo + dr) - (lo.abs() + dr) * 1e-15;
    }

    /// [`Self::store`] of the upper bound alone.
    #[inline(always)]
    fn store_upper(&mut self, i: usize, a: usize, u: f64) {
        let g = self.grown[a];
        self.upper[i] = (u - g) + (u.abs() + g) * 1e-15;
    }
}

/// Bounds storage made resident while the rows are appended (under `algorithm = hamerly`,
/// which the shard learns from its parameters), for every whole block: the step that first
/// builds bounds takes these blocks instead of faulting in fresh pages of the linear memory
/// (16 bytes of bounds and ~8 of block sums per row: at 1,000,000 rows ~6,000 page faults,
/// which made that step 1.25-1.75x Lloyd's on the AMD machines, where the build's own work
/// is ~1.12x). The cost moves to loading, which faults in the rows' 128 bytes anyway.
pub(super) struct Resident {
    k: usize,
    stride: usize,
    blocks: Vec<Block>,
}

impl Resident {
    pub(super) fn new(k: usize, d: usize) -> Self {
        Self { k, stride: k * d + 2 * k, blocks: Vec::new() }
    }

    /// Makes the storage of every whole block of the shard's first `rows` rows resident.
    pub(super) fn grow(&mut self, rows: usize) {
        let b = block_rows(self.k);
        while (self.blocks.len() + 1) * b <= rows {
            let mut blk = Block::default();
            blk.ready(b, self.k, self.stride);
            // One store per page (4 KiB, 512 values) faults it in; an opaque value, so that
            // the compiler cannot drop the store as rewriting the allocation's zeros.
            for v in [&mut blk.upper, &mut blk.lower, &mut blk.sums] {
                for i in (0..v.len()).step_by(512) {
                    v[i] = std::hint::black_box(0.0);
                }
            }
            self.blocks.push(blk);
        }
    }

    /// The resident blocks, when they were made for `k` centroids (each as `ready` leaves a
    /// fresh block: zero).
    fn into_blocks(self, k: usize) -> Vec<Block> {
        if self.k == k {
            self.blocks
        } else {
            Vec::new()
        }
    }
}

/// A stored upper bound moved by its centroid's growth `g`: `(stored + g) (1 + 1e-15)`, whose
/// guard (~4.5 ulp) covers the three roundings (≤ 1.5 ulp) of this form.
#[inline(always)]
fn moved_upper(stored: f64, g: f64) -> f64 {
    stored * (1.0 + 1e-15) + g * (1.0 + 1e-15)
}

/// A stored lower bound, never negative (as [`Block::store`] stores them), moved by its drop
/// `dr`: `stored (1 − 1e-15) − dr (1 + 1e-15)`, whose guard covers the three roundings of
/// this form.
#[inline(always)]
fn moved_lower(stored: f64, dr: f64) -> f64 {
    stored * (1.0 - 1e-15) - dr * (1.0 + 1e-15)
}

/// Writes to the front of `open` the rows `i` of a block whose bounds, moved by the block's
/// movements, do not settle their centroid, and returns how many: `labels`, `sqnorm` and the
/// block's stored bounds are its rows', `per[a]` holds centroid `a`'s growth and drop and
/// twice the distance to its nearest centroid, and `α ‖x‖² + β` is four times the row's margin
/// ([`Margin::four_times_affine`]). `open` holds at least the block's rows.
///
/// On its own and without a call in its loop (no `Vec::push`), so that the row loop keeps its
/// values in registers: inlined into the bounded step, with `push` (whose growth path is a
/// call: no XMM register survives one), the wasm build kept 8 values on the stack and ran ~55
/// instructions per settled row, now ~47.
#[inline(never)]
fn unsettled(
    labels: &[u32],
    sqnorm: &[f64],
    blk: &Block,
    per: &[[f64; 3]],
    (alpha, beta): (f64, f64),
    open: &mut [u32],
) -> usize {
    // Else rows past its end would be counted but not written.
    assert!(open.len() >= labels.len(), "room for {} rows, not {}", open.len(), labels.len());
    let mut n = 0;
    let rows = labels.iter().zip(sqnorm).zip(blk.upper.iter().zip(&blk.lower));
    for (i, ((&a, &sq), (&up, &lw))) in rows.enumerate() {
        let [g, dr, near] = per[a as usize];
        let (u, lo) = (moved_upper(up, g), moved_lower(lw, dr));
        let l = max_f64(lo, near - u);
        let settled = l >= 0.0 && l * l - u * u > alpha * sq + beta;
        if let Some(slot) = open.get_mut(n) {
            *slot = i as u32;
        }
        n += !settled as usize;
    }
    n
}

/// Stores the bounds of a block's scored rows (`best` their centroids, `top` their smallest
/// two scores; with `SCORES = 1` the smallest and lower bounds 0) as valid now into
/// `upper`/`lower`, and their centroids into `labels`; returns how many rows changed centroid.
/// On its own, with the slices zipped (no bounds checks) and nothing else live in its loop:
/// in `bounds_block`'s row loop, beside the sample blocks' count, the wasm build kept values
/// on the stack and checked four indices per row.
#[inline(never)]
fn store_bounds<const SCORES: u8>(
    best: &[u32],
    top: &[[f32; 2]],
    sqnorm: &[f64],
    labels: &mut [u32],
    (upper, lower): (&mut [f64], &mut [f64]),
    margin: &Margin,
) -> u64 {
    let (alpha, beta) = margin.four_times_affine();
    let mut changed = 0u64;
    let rows = best.iter().zip(top).zip(sqnorm).zip(labels.iter_mut()).zip(upper.iter_mut().zip(lower.iter_mut()));
    for ((((&j, &t), &sq), label), (up, lo)) in rows {
        // Above the row's margin (four times it, quartered).
        let e = 0.25 * (alpha * sq + beta);
        (*up, *lo) = if SCORES == 2 { bounds_of(t, sq, e) } else { (upper_of(t[0], sq, e), 0.0) };
        changed += (*label != j) as u64;
        *label = j;
    }
    changed
}

/// The share of rows the bounds must settle for the next step to test bounds row by row;
/// below it, a step scores every row in the SIMD scan as Lloyd's does (testing a row's
/// bounds, tightening its upper bound, scoring it apart and summing its block's clusters
/// again cost more than they save while the centroids move far, e.g. from the first rows or
/// on unclustered data). Either way the step's partial and assignments are the same.
///
/// A step that scores every row (the first, or one after bounds that settled too few) first
/// scans a sample of the blocks (every [`SAMPLE_EVERY`]-th) with bounds and counts how many
/// of their rows the old bounds, moved, would have settled (in the first step: how many the
/// new bounds would settle with no lower bound but the triangle inequality's). It builds
/// bounds for the other blocks too (the two best scores per row, two square roots and two
/// stores: 12 % more wasm instructions than Lloyd's step) only when that share, extrapolated
/// one step by its change since the last step, reaches this threshold (in the first step:
/// when the share itself does); otherwise they get Lloyd's scan alone, and the next step scans
/// every row again.
///
/// In the wasm build a bounded step costs about 0.45 of a Lloyd step when it settles 93 % of
/// the rows (reading the bounds, and the rows it tightens, scores or sums again), and
/// 1.05-1.12x when it settles 74 % (unclustered rows, steps 10-30 from the first rows: half
/// the rows tightened, a quarter scored, 40 % summed again), hence 80 % (it was 60 %, and
/// 25 % before that). The extrapolation keeps the third step from the first rows on blobs
/// building bounds (its sample settles 64 %, up from 17 %; the next step settles 94 %),
/// where unclustered rows, settling a steady ~74 %, keep Lloyd's scan.
const SCAN_ALL_BELOW: f64 = 0.8;

/// A full scan's sample: every `SAMPLE_EVERY`-th block of the shard (the first always) keeps
/// bounds, so that each full scan can tell whether bounds would pay off (at 1,000,000 rows
/// and `k = 16`: 123 blocks of 512 rows).
const SAMPLE_EVERY: usize = 16;

/// When the triangle inequality alone (a row's distance to its centroid below half the
/// distance from that centroid to the nearest other) settles at least this share of a full
/// scan's sample, the other blocks get upper bounds only (their lower bounds 0): the second
/// best score per row is not worth its cost when so few rows would need it (they get it when
/// first scored).
const UPPER_ONLY_ABOVE: f64 = 0.9;

/// A step that was to scan every row (after bounds that settled too few) takes a bounded step
/// after all when its sample finds that the old bounds, moved, would have settled at least
/// this share of the rows (the centroids stopped travelling). It needs the bounds of every
/// block, so not after a full scan that gave most blocks Lloyd's scan alone. (At 50 %, the
/// third step from the first rows on blobs, which would settle ~60 %, ran 1.18x a Lloyd step
/// as a bounded step, against 1.10x as a full scan building bounds; see [`SCAN_ALL_BELOW`]
/// for why not below 80 %.)
const BOUNDED_ABOVE: f64 = 0.85;

/// A block of a bounded step whose bounds (moved, the upper bound then tightened) leave more
/// than this share of its rows unsettled is scored whole, as a full scan scores a block with
/// bounds (two best scores per row, the block's sums in the same pass): gathering the rows
/// and summing the block's clusters again cost more than the skipped rows save (the second
/// step from the first rows on blobs, where most centroids still travel far, took 1.6-2.0x a
/// Lloyd step, now 0.95-1.05x).
const RESCAN_BLOCK_ABOVE: f64 = 0.5;

/// A block whose moved bounds (before tightening) leave more than this share of its rows
/// unsettled is scored whole without tightening them first: the second step from the first
/// rows, where the moved bounds settle ~0.2 % of the rows and the tightened ones ~17 %.
const TIGHTEN_UP_TO: f64 = 0.9;

/// True when `lower ≥ 0` and `lower² − upper² > 4e`: the assigned centroid's exact score is
/// then below every other centroid's by over `2e`, so its f32 score is strictly below theirs
/// and the f64 decision of a row near a tie picks it too: the full scan would keep it.
#[inline(always)]
fn settled(lower: f64, upper: f64, e: f64) -> bool {
    lower >= 0.0 && lower * lower - upper * upper > 4.0 * e
}

/// How far each centroid moved since the bounds were made (and the largest two movements),
/// and half the distance from each centroid to its nearest other centroid.
struct Moves {
    mv: Vec<f64>,
    half: Vec<f64>,
    m1: f64,
    m1j: usize,
    m2: f64,
}

impl Moves {
    /// Movements from `prev` to `model` (none without `prev`: fresh bounds).
    fn new(model: &[f64], prev: Option<&[f64]>, k: usize, d: usize) -> Self {
        let mut s = Self { mv: vec![0.0; k], half: vec![f64::INFINITY; k], m1: 0.0, m1j: usize::MAX, m2: 0.0 };
        for j in 0..k {
            let Some(prev) = prev else { break };
            let (c, p) = (&model[j * d..(j + 1) * d], &prev[j * d..(j + 1) * d]);
            s.mv[j] = c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt() * (1.0 + 1e-12);
            if s.mv[j] > s.m1 {
                (s.m2, s.m1, s.m1j) = (s.m1, s.mv[j], j);
            } else if s.mv[j] > s.m2 {
                s.m2 = s.mv[j];
            }
        }
        for j in 0..k {
            for i in j + 1..k {
                let (a, c) = (&model[j * d..(j + 1) * d], &model[i * d..(i + 1) * d]);
                let s2 = 0.5 * a.iter().zip(c).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt() * (1.0 - 1e-12);
                s.half[j] = s.half[j].min(s2);
                s.half[i] = s.half[i].min(s2);
            }
        }
        s
    }

    /// How far the lower bound of a row of centroid `a` (to every other centroid) drops: the
    /// others' largest movement.
    #[inline(always)]
    fn drop(&self, a: usize) -> f64 {
        if a == self.m1j {
            self.m2
        } else {
            self.m1
        }
    }

    /// Whether the moved lower bound `lo` and the upper bound `u` settle a row assigned to `a`
    /// (the lower bound also by the triangle inequality through `a`'s nearest centroid).
    #[inline(always)]
    fn settles(&self, lo: f64, u: f64, a: usize, e: f64) -> bool {
        settled(max_f64(lo, 2.0 * self.half[a] - u), u, e)
    }
}

/// A scored row's exact bounds from the scan's `[s0, s1]` (its centroid's score and one at
/// most every other's, each within `e` of an exact score: see [`Centroids::assign_rows`]),
/// `‖x‖² = sq` and margin `e`: (upper, lower).
#[inline(always)]
fn bounds_of([s0, s1]: [f32; 2], sq: f64, e: f64) -> (f64, f64) {
    (upper_of(s0, sq, e), max_f64(2.0 * (s1 as f64 - e) + sq, 0.0).sqrt() * (1.0 - 1e-12))
}

/// The upper bound of [`bounds_of`] alone, from the smallest score `s0`.
#[inline(always)]
fn upper_of(s0: f32, sq: f64, e: f64) -> f64 {
    max_f64(2.0 * (s0 as f64 + e) + sq, 0.0).sqrt() * (1.0 + 1e-12)
}

impl KMeansShard {
    /// Hamerly: rows whose bounds settle their assignment are skipped; the others are scored
    /// as Lloyd scores them. Scores every row (and builds the bounds) when the shard holds no
    /// bounds for this `k` or the last bounds settled too few rows.
    pub(super) fn step_hamerly(&mut self, model: &[f64], centroids: &Centroids, out: &mut [f64]) -> u64 {
        let (d, k, n) = (self.d, centroids.k, self.sqnorm.len());
        let b = block_rows(k);
        let stride = k * d + 2 * k;
        let blocks = n.div_ceil(b);
        let mut st = match self.bounds.take() {
            Some(st) if st.prev.len() == k * d && st.rows == n => st,
            _ => Bounds {
                prev: Vec::new(),
                rows: n,
                blocks: {
                    let mut v = self.resident.take().map_or_else(Vec::new, |r| r.into_blocks(k));
                    v.truncate(blocks);
                    v.resize_with(blocks, Block::default);
                    v
                },
                scan_all_next: false,
                stale: false,
                last_share: 0.0,
            },
        };
        // `fresh`: no bounds yet; `full`: every row scored (and every block's sums rebuilt).
        let fresh = st.prev.is_empty();
        let full = fresh || st.scan_all_next;
        let margin = centroids.margin();
        let moves = Moves::new(model, (!fresh).then_some(&st.prev[..]), k, d);
        let mut changed = 0u64;
        self.scored = 0;
        if full {
            // The sample blocks first, with bounds, to learn whether bounds will pay off; then
            // every block in order, the others with bounds only if so.
            let (mut sample_rows, mut moved, mut half) = (0u64, 0u64, 0u64);
            let mut scratch = (vec![0u32; b], vec![[0.0f32; 2]; b], Grouping::default());
            for bi in (0..blocks).step_by(SAMPLE_EVERY) {
                let rows = bi * b..((bi + 1) * b).min(n);
                sample_rows += rows.len() as u64;
                let c = self.bounds_block::<2>(&mut st, bi, rows, centroids, margin, &moves, true, &mut scratch);
                changed += c.0;
                moved += c.1;
                half += c.2;
            }
            let share = |rows: u64| rows as f64 / sample_rows.max(1) as f64;
            if !fresh && !st.stale && share(moved) >= BOUNDED_ABOVE {
                // The bounds would settle most rows after all (the centroids stopped
                // travelling): the other blocks take a bounded step.
                let (c, settled_rows) = self.bounded_step(&mut st, centroids, margin, &moves, out, true);
                st.prev.clear();
                st.prev.extend_from_slice(&model[..k * d]);
                st.last_share = (settled_rows + moved) as f64 / n.max(1) as f64;
                st.scan_all_next = st.last_share < SCAN_ALL_BELOW;
                self.scored += sample_rows;
                self.scanned_all = false;
                self.bounds = Some(st);
                return changed + c;
            }
            // Fresh: the triangle inequality's share; else the old bounds' share, extrapolated.
            let predicted = if fresh { share(half) } else { 2.0 * share(moved) - st.last_share };
            let build = predicted >= SCAN_ALL_BELOW;
            st.last_share = if fresh { 0.0 } else { share(moved) };
            let upper_only = share(half) >= UPPER_ONLY_ABOVE;
            // Without bounds, the other blocks' sums go through one spare slot (nothing will
            // reuse them: the next step scans every row again).
            let mut spare = if build { Vec::new() } else { vec![0.0; stride] };
            for bi in 0..blocks {
                let rows = bi * b..((bi + 1) * b).min(n);
                let sample = bi % SAMPLE_EVERY == 0;
                if !sample && !build {
                    changed += self.lloyd_block(rows, centroids, &mut spare, &mut scratch.0, &mut scratch.2);
                    add_to(out, &spare);
                    continue;
                }
                if !sample {
                    changed += if upper_only {
                        self.bounds_block::<1>(&mut st, bi, rows, centroids, margin, &moves, false, &mut scratch).0
                    } else {
                        self.bounds_block::<2>(&mut st, bi, rows, centroids, margin, &moves, false, &mut scratch).0
                    };
                }
                add_to(out, &st.blocks[bi].sums);
            }
            st.prev.clear();
            st.prev.extend_from_slice(&model[..k * d]);
            st.scan_all_next = !build;
            st.stale = !build;
            self.scored = n as u64;
            self.scanned_all = true;
            self.bounds = Some(st);
            return changed;
        }
        let (changed, settled_rows) = self.bounded_step(&mut st, centroids, margin, &moves, out, false);
        st.prev.clear();
        st.prev.extend_from_slice(&model[..k * d]);
        st.last_share = settled_rows as f64 / n.max(1) as f64;
        st.scan_all_next = st.last_share < SCAN_ALL_BELOW;
        self.scanned_all = false;
        self.bounds = Some(st);
        changed
    }

    /// The rows whose bounds do not settle them are gathered and scored; the sums of a block
    /// are recomputed only for the clusters its moved rows left or joined; a block whose bounds
    /// leave most rows unsettled is scored whole. With `skip_sample`, the sample blocks (scored
    /// already) only add their sums. Returns the rows that changed centroid and the rows the
    /// bounds settled. (On its own, so that the margin
    /// and the movements reach the row loop as read-only values the compiler keeps in
    /// registers: inlined, the wasm build reloaded them for every row.)
    #[inline(never)]
    fn bounded_step(
        &mut self,
        st: &mut Bounds,
        centroids: &Centroids,
        margin: &Margin,
        moves: &Moves,
        out: &mut [f64],
        skip_sample: bool,
    ) -> (u64, u64) {
        let (d, k, n) = (self.d, centroids.k, self.sqnorm.len());
        let b = block_rows(k);
        let stride = k * d + 2 * k;
        let mut changed = 0u64;
        // Rows the bounds settle.
        let mut settled_rows = 0u64;
        // The clusters whose rows moved in the block (their sums to be summed again).
        let mut dirty = vec![false; k];
        let mut todo: Vec<usize> = Vec::with_capacity(b);
        let mut open = vec![0u32; b];
        // Per centroid, what the row loop reads: the block's growth of upper bounds, drop of
        // lower bounds, and the distance to the nearest other centroid (one bounds check).
        let mut per = vec![[0.0f64; 3]; k];
        let (alpha, beta) = margin.four_times_affine();
        let mut scratch = (vec![0u32; b], vec![[0.0f32; 2]; b], Grouping::default());
        let mut buf = vec![0.0f32; ROWS_PER_BLOCK * d];
        for (bi, b0) in (0..n).step_by(b).enumerate() {
            let b1 = (b0 + b).min(n);
            let blk = &mut st.blocks[bi];
            if skip_sample && bi % SAMPLE_EVERY == 0 {
                add_to(out, &blk.sums);
                continue;
            }
            debug_assert_eq!(blk.sums.len(), stride, "a bounded step needs every block's bounds");
            blk.advance(moves);
            for (a, p) in per.iter_mut().enumerate() {
                *p = [blk.grown[a], blk.dropped[a], 2.0 * moves.half[a]];
            }
            // The bounds moved by the centroids' movement (read, not written back): the rows
            // they do not settle ([`unsettled`]: the slices zipped, one bounds check per row;
            // indexing each slice took twice the wasm instructions per row).
            let n = unsettled(&self.labels[b0..b1], &self.sqnorm[b0..b1], blk, &per, (alpha, beta), &mut open);
            todo.clear();
            todo.extend(open[..n].iter().map(|&i| b0 + i as usize));
            // Tighten the others' upper bounds to their distance (from an f32 score and its
            // rounding margin) and test them again; unless nearly every row is left, when the
            // whole block is scored anyway.
            let tighten = todo.len() as f64 <= TIGHTEN_UP_TO * (b1 - b0) as f64;
            let mut kept = if tighten { 0 } else { todo.len() };
            for t in 0..if tighten { todo.len() } else { 0 } {
                let row = todo[t];
                let a = self.labels[row] as usize;
                let (sq, xr) = (self.sqnorm[row], &self.x[row * d..(row + 1) * d]);
                let e = margin.of(sq);
                let u = upper_of(centroids.score_one(xr, a), sq, e);
                blk.store_upper(row - b0, a, u);
                if !moves.settles(blk.lower(row - b0, a), u, a, e) {
                    todo[kept] = row;
                    kept += 1;
                }
            }
            todo.truncate(kept);
            settled_rows += (b1 - b0 - todo.len()) as u64;
            if todo.len() as f64 > RESCAN_BLOCK_ABOVE * (b1 - b0) as f64 {
                self.scored += (b1 - b0) as u64;
                changed += self.bounds_block::<2>(st, bi, b0..b1, centroids, margin, moves, false, &mut scratch).0;
                add_to(out, &st.blocks[bi].sums);
                continue;
            }
            let blk = &mut st.blocks[bi];
            let (best, top) = (&mut scratch.0, &mut scratch.1);
            for (g, group) in todo.chunks(ROWS_PER_BLOCK).enumerate() {
                for (r, &row) in group.iter().enumerate() {
                    buf[r * d..(r + 1) * d].copy_from_slice(&self.x[row * d..(row + 1) * d]);
                }
                let o = g * ROWS_PER_BLOCK;
                let m = group.len();
                centroids.scan_rows::<2>(&buf[..m * d], &mut best[o..o + m], &mut top[o..o + m]);
            }
            let (x, sq) = (&self.x, &self.sqnorm);
            let row = |t: usize| (&x[todo[t] * d..(todo[t] + 1) * d], sq[todo[t]]);
            centroids.decide_ties::<2>(&mut best[..todo.len()], &mut top[..todo.len()], row);
            self.scored += todo.len() as u64;
            for (t, &row) in todo.iter().enumerate() {
                let j = best[t];
                let sq = self.sqnorm[row];
                let (u, lo) = bounds_of(top[t], sq, margin.of(sq));
                blk.store(row - b0, j as usize, u, lo);
                let old = self.labels[row];
                if old != j {
                    changed += 1;
                    (dirty[old as usize], dirty[j as usize]) = (true, true);
                    self.labels[row] = j;
                }
            }
            if dirty.contains(&true) {
                // The dirty clusters' sums again, in row order from zero.
                let (x, sq) = (&self.x[b0 * d..b1 * d], &self.sqnorm[b0..b1]);
                cluster_sums(&mut blk.sums, k, x, sq, &self.labels[b0..b1], |j| dirty[j], &mut scratch.2);
                dirty.fill(false);
            }
            add_to(out, &blk.sums);
        }
        (changed, settled_rows)
    }

    /// [`scan_block`] of `rows`, compiled on its own (inlined into the step's loop, the
    /// same scan ran ~7 % more instructions per row than Lloyd's).
    #[inline(never)]
    fn lloyd_block(
        &mut self,
        rows: core::ops::Range<usize>,
        centroids: &Centroids,
        slot: &mut [f64],
        best: &mut [u32],
        group: &mut Grouping,
    ) -> u64 {
        scan_block(&self.x, self.d, &self.sqnorm, &mut self.labels, rows, centroids, slot, best, group)
    }

    /// Scores every row of block `bi` (`rows`) as Lloyd's scan does, rebuilds the rows' bounds
    /// from their two best scores (`SCORES = 2`; with 1, from the best alone and lower bounds
    /// 0) and the block's sums (in row order from zero); `scratch` holds a block's best
    /// centroids and scores. Returns the rows that changed centroid and, with `count`, the rows whose old
    /// bounds, moved by the centroids' movement and with the upper bound tightened to this
    /// scan's distance, would have settled them; then the rows whose new upper bound the
    /// triangle inequality alone settles (lower bound 0, no centroid moving).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn bounds_block<const SCORES: u8>(
        &mut self,
        st: &mut Bounds,
        bi: usize,
        rows: core::ops::Range<usize>,
        centroids: &Centroids,
        margin: &Margin,
        moves: &Moves,
        count: bool,
        scratch: &mut (Vec<u32>, Vec<[f32; 2]>, Grouping),
    ) -> (u64, u64, u64) {
        let (d, k) = (self.d, centroids.k);
        let stride = k * d + 2 * k;
        let (b0, blk) = (rows.start, st.blocks[bi].ready(rows.len(), k, stride));
        let (mut moved, mut half) = (0u64, 0u64);
        if count {
            // The old bounds, moved by this step, for the count.
            blk.advance(moves);
        }
        // The whole block in one scan, then its rows' bounds (now in L2) row by row and its
        // sums cluster by cluster ([`block_sums`]). Scanning a group of rows at a time instead,
        // the values the row loop keeps (the margin's) would be live across the scoring loop
        // and take registers from its accumulators (the wasm build ran ~20 % more instructions
        // than Lloyd's step).
        let (best, top) = (&mut scratch.0[..rows.len()], &mut scratch.1[..rows.len()]);
        centroids.assign_rows::<SCORES>(&self.x[rows.start * d..rows.end * d], &self.sqnorm[rows.clone()], best, top);
        if count {
            // Before the new bounds overwrite the old ones.
            for (row, (&j, &t)) in rows.clone().zip(best.iter().zip(top.iter())) {
                let (sq, old, a) = (self.sqnorm[row], self.labels[row], j as usize);
                let e = margin.of(sq);
                let upper = upper_of(t[0], sq, e);
                moved += (old == j && moves.settles(blk.lower(row - b0, a), upper, a, e)) as u64;
                half += moves.settles(0.0, upper, a, e) as u64;
            }
        }
        let changed = store_bounds::<SCORES>(
            best,
            top,
            &self.sqnorm[rows.clone()],
            &mut self.labels[rows.clone()],
            (&mut blk.upper, &mut blk.lower),
            margin,
        );
        let x = &self.x[rows.start * d..rows.end * d];
        block_sums(&mut blk.sums, k, x, &self.sqnorm[rows.start..rows.end], best, &mut scratch.2);
        // The bounds are as of now.
        blk.grown.fill(0.0);
        blk.dropped.fill(0.0);
        (changed, moved, half)
    }
}

#[cfg(test)]
mod tests;
