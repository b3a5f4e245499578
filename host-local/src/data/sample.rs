//! The initialisation sample, drawn while the data loads and independent of how the data is
//! split: every function offers each row it loads to a [`SampleCollector`], the collectors
//! meet at the first synchronisation ([`crate::census`]), and the merged sample is the same
//! rows, in the same order, whatever the number of functions, inner workers or the file
//! format.
//!
//! - `Uniform { count, seed }`: each row gets a key, a seeded hash of its values (features
//!   and label, as the f32 bits the kernel sees); the sample is the `count` rows with the
//!   smallest keys, in key order (bottom-k sampling: a uniform sample without replacement,
//!   since the key depends on nothing but the row). Rows equal in every value share a key,
//!   so duplicates enter or leave the sample together; ties are broken by the values
//!   themselves, which makes the order total.
//! - `Head(n)`: the first `n` rows in file order: each collector keeps its first `n`, and
//!   merging in function (then inner-worker) order keeps the first `n` of all.
//!
//! A collector holds at most `2 * count` rows between compactions, so memory stays small.

use crate::kernel::{Sample, SamplePlan};

use super::Rows;

/// The sample rows one function (or one inner worker) offers.
#[derive(Clone, Debug)]
pub struct SampleCollector {
    plan: SamplePlan,
    cols: usize,
    has_labels: bool,
    /// `(key, features, label)`; for `Head` the key is the row's order of arrival.
    rows: Vec<(u64, Vec<f32>, f32)>,
    offered: u64,
    /// `Uniform`: once `count` rows are kept, a row of a larger key can never enter.
    cutoff: u64,
    /// `Uniform`, after [`SampleCollector::census_quota`] withheld rows: the largest key sent
    /// by a collector that withheld some (the smallest such, once merged). The sample is
    /// exact only if all its keys are below it.
    bound: u64,
}

/// A seeded 64-bit hash of a row's values (SplitMix64's finaliser over each word).
pub fn row_key(seed: u64, features: &[f32], label: Option<f32>) -> u64 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut h = mix(seed ^ 0x9E37_79B9_7F4A_7C15);
    for v in features.iter().chain(label.as_ref()) {
        h = mix(h.wrapping_add(0x9E37_79B9_7F4A_7C15) ^ v.to_bits() as u64);
    }
    h
}

impl SampleCollector {
    /// An empty collector for `plan` over rows of `cols` features (plus a label if
    /// `has_labels`).
    pub fn new(plan: SamplePlan, cols: usize, has_labels: bool) -> Self {
        Self { plan, cols, has_labels, rows: Vec::new(), offered: 0, cutoff: u64::MAX, bound: u64::MAX }
    }

    /// The plan it collects for.
    pub fn plan(&self) -> SamplePlan {
        self.plan
    }

    fn limit(&self) -> usize {
        match self.plan {
            SamplePlan::Head(n) => n as usize,
            SamplePlan::Uniform(u) => u.count as usize,
        }
    }

    /// Offers every row of `rows` (in file order).
    pub fn offer(&mut self, rows: &Rows) {
        let limit = self.limit();
        for i in 0..rows.len() {
            let (f, l) = rows.slice(i..i + 1);
            let label = l.first().copied();
            let key = match self.plan {
                SamplePlan::Head(_) if self.rows.len() >= limit => break,
                SamplePlan::Head(_) => self.offered,
                SamplePlan::Uniform(u) => row_key(u.seed, f, label),
            };
            self.offered += 1;
            if limit > 0 && key <= self.cutoff {
                self.rows.push((key, f.to_vec(), label.unwrap_or(0.0)));
            }
            if self.rows.len() >= 2 * limit.max(1) {
                self.compact();
            }
        }
    }

    /// Keeps the rows that can still be in the sample.
    fn compact(&mut self) {
        let limit = self.limit();
        if let SamplePlan::Uniform(_) = self.plan {
            self.rows.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| a.1.iter().map(|v| v.to_bits()).cmp(b.1.iter().map(|v| v.to_bits())))
                    .then_with(|| a.2.to_bits().cmp(&b.2.to_bits()))
            });
            if self.rows.len() >= limit && limit > 0 {
                self.cutoff = self.rows[limit - 1].0;
            }
        }
        self.rows.truncate(limit);
    }

    /// Adds `later`'s rows, which come after this collector's in file order.
    pub fn merge(&mut self, later: SampleCollector) {
        if let SamplePlan::Head(_) = self.plan {
            let base = self.offered;
            self.rows.extend(later.rows.into_iter().map(|(k, f, l)| (base + k, f, l)));
        } else {
            self.rows.extend(later.rows);
        }
        self.offered += later.offered;
        self.bound = self.bound.min(later.bound);
        self.compact();
    }

    /// The sample for `plan` (the plan made once the row count is known: it may ask for
    /// fewer rows than the collector's, never for more or for other rows).
    pub fn finish(mut self, plan: SamplePlan) -> Result<Sample, String> {
        let compatible = match (plan, self.plan) {
            (SamplePlan::Head(n), SamplePlan::Head(m)) => n <= m,
            (SamplePlan::Uniform(a), SamplePlan::Uniform(b)) => a.seed == b.seed && a.count <= b.count,
            _ => false,
        };
        if !compatible {
            return Err(format!(
                "the kernel's sample plan changed once the row count was known ({:?} before, {plan:?} after)",
                self.plan
            ));
        }
        self.plan = plan;
        self.compact();
        let complete = self.rows.len() as u64 == self.limit() as u64;
        if self.bound != u64::MAX && !(complete && self.rows.last().is_some_and(|r| r.0 < self.bound)) {
            return Err("the init sample needs rows a function withheld at the census (each sends about 4x its \
                        expected share of the sample): rerun with fewer functions"
                .to_string());
        }
        let mut s = Sample { features: Vec::with_capacity(self.rows.len() * self.cols), labels: Vec::new() };
        for (_, f, l) in self.rows {
            s.features.extend_from_slice(&f);
            if self.has_labels {
                s.labels.push(l);
            }
        }
        Ok(s)
    }

    /// Keeps only the rows that can plausibly be in the sample of a job of `functions`
    /// functions: about 4x this function's expected share (`count / functions`), plus 64,
    /// so that the census carries about `4 count + 64 F` rows in all instead of `count F`.
    /// Whether that sufficed is checked when the sample is made ([`SampleCollector::finish`]
    /// refuses rather than give another sample); with a binomial share of mean `count / F`
    /// the shortfall is astronomically unlikely.
    pub fn census_quota(&mut self, functions: u32) {
        if let SamplePlan::Uniform(u) = self.plan {
            self.compact();
            let quota = (u.count / functions.max(1) as u64 * 4 + 64).min(u.count) as usize;
            if self.rows.len() > quota {
                self.bound = self.rows[quota - 1].0;
                self.rows.truncate(quota);
            }
        }
    }

    /// As `f64`s for the state store: `[offered, rows, (key high, key low, values...)...]`
    /// (f32 values and 32-bit halves are exact in f64).
    pub fn encode(&self, out: &mut Vec<f64>) {
        out.push(self.offered as f64);
        out.push(self.rows.len() as f64);
        for (k, f, l) in &self.rows {
            out.push((k >> 32) as f64);
            out.push((k & 0xFFFF_FFFF) as f64);
            out.extend(f.iter().map(|&v| v as f64));
            out.push(*l as f64);
        }
    }

    /// Reads what [`SampleCollector::encode`] wrote at the start of `v`; returns the rest.
    pub fn decode(plan: SamplePlan, cols: usize, has_labels: bool, v: &[f64]) -> Option<(SampleCollector, &[f64])> {
        let (&offered, &n) = (v.first()?, v.get(1)?);
        let width = 3 + cols;
        let end = 2 + n as usize * width;
        let body = v.get(2..end)?;
        let rows = body
            .chunks_exact(width)
            .map(|r| {
                let key = (r[0] as u64) << 32 | r[1] as u64;
                (key, r[2..2 + cols].iter().map(|&x| x as f32).collect(), r[2 + cols] as f32)
            })
            .collect();
        let mut c = SampleCollector {
            plan,
            cols,
            has_labels,
            rows,
            offered: offered as u64,
            cutoff: u64::MAX,
            bound: u64::MAX,
        };
        // Fewer rows than a full collector keeps: the sender withheld the rest.
        if matches!(plan, SamplePlan::Uniform(_)) && c.rows.len() < c.limit().min(c.offered as usize) {
            c.bound = c.rows.last().map_or(0, |r| r.0);
        }
        Some((c, &v[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::UniformSample;

    fn rows(range: std::ops::Range<u32>) -> Rows {
        Rows {
            cols: 2,
            features: range.clone().flat_map(|i| [i as f32, (i % 7) as f32 * 0.5]).collect(),
            labels: range.map(|i| (i % 2) as f32).collect(),
        }
    }

    /// The sample of 20,000 rows is the same whatever the split into consecutive pieces (7
    /// pieces withhold rows at the census quota, 400 pieces send all they have), and
    /// for `Uniform` it is the `count` rows of smallest key computed directly.
    #[test]
    fn the_sample_does_not_depend_on_the_split() {
        let n = 20_000u32;
        for plan in [SamplePlan::Uniform(UniformSample { count: 200, seed: 5 }), SamplePlan::Head(12)] {
            let whole = {
                let mut c = SampleCollector::new(plan, 2, true);
                c.offer(&rows(0..n));
                c.finish(plan).unwrap()
            };
            let mut withheld = false;
            for pieces in [2u32, 3, 7, 400] {
                let mut merged: Option<SampleCollector> = None;
                for p in 0..pieces {
                    let mut c = SampleCollector::new(plan, 2, true);
                    c.offer(&rows(n * p / pieces..n * (p + 1) / pieces));
                    c.census_quota(pieces);
                    withheld |= c.bound != u64::MAX;
                    // Through the store's encoding, as the census carries it.
                    let mut v = Vec::new();
                    c.encode(&mut v);
                    let (c, rest) = SampleCollector::decode(plan, 2, true, &v).unwrap();
                    assert!(rest.is_empty());
                    match &mut merged {
                        Some(m) => m.merge(c),
                        None => merged = Some(c),
                    }
                }
                let got = merged.unwrap().finish(plan).unwrap();
                assert_eq!(
                    (got.features, got.labels),
                    (whole.features.clone(), whole.labels.clone()),
                    "{plan:?} in {pieces} pieces"
                );
            }
            assert_eq!(withheld, matches!(plan, SamplePlan::Uniform(_)), "the quota is exercised");
            let want: Vec<u32> = match plan {
                SamplePlan::Head(m) => (0..m as u32).collect(),
                SamplePlan::Uniform(u) => {
                    let all = rows(0..n);
                    let mut keyed: Vec<(u64, u32)> = (0..n)
                        .map(|i| {
                            let (f, l) = all.slice(i as usize..i as usize + 1);
                            (row_key(u.seed, f, Some(l[0])), i)
                        })
                        .collect();
                    keyed.sort();
                    keyed[..u.count as usize].iter().map(|&(_, i)| i).collect()
                }
            };
            let got: Vec<u32> = whole.features.chunks(2).map(|r| r[0] as u32).collect();
            assert_eq!(got, want, "{plan:?}");
            assert_eq!(whole.labels, want.iter().map(|i| (i % 2) as f32).collect::<Vec<_>>());
        }
    }

    /// A function whose withheld rows would have been in the sample makes the sample fail,
    /// never silently differ: here one piece holds every row of small key.
    #[test]
    fn a_sample_that_needs_withheld_rows_is_refused() {
        let plan = SamplePlan::Uniform(UniformSample { count: 200, seed: 5 });
        let all = rows(0..4000);
        let mut keyed: Vec<(u64, usize)> = (0..all.len())
            .map(|i| {
                let (f, l) = all.slice(i..i + 1);
                (row_key(5, f, Some(l[0])), i)
            })
            .collect();
        keyed.sort();
        // Piece 0: the 400 rows of smallest key; pieces 1..8: the rest.
        let pick = |range: std::ops::Range<usize>| {
            let mut r = Rows { cols: 2, features: Vec::new(), labels: Vec::new() };
            for &(_, i) in &keyed[range] {
                let (f, l) = all.slice(i..i + 1);
                r.features.extend_from_slice(f);
                r.labels.extend_from_slice(l);
            }
            r
        };
        let mut merged = SampleCollector::new(plan, 2, true);
        for range in [0..400, 400..1000, 1000..4000] {
            let mut c = SampleCollector::new(plan, 2, true);
            c.offer(&pick(range));
            c.census_quota(50);
            let mut v = Vec::new();
            c.encode(&mut v);
            merged.merge(SampleCollector::decode(plan, 2, true, &v).unwrap().0);
        }
        assert!(merged.finish(plan).unwrap_err().contains("withheld"));
    }

    #[test]
    fn a_plan_that_asks_for_more_or_other_rows_later_is_refused() {
        let u = |count, seed| SamplePlan::Uniform(UniformSample { count, seed });
        let c = SampleCollector::new(u(10, 1), 2, false);
        assert!(c.clone().finish(u(5, 1)).is_ok());
        assert!(c.clone().finish(u(11, 1)).unwrap_err().contains("sample plan changed"));
        assert!(c.clone().finish(u(10, 2)).is_err());
        assert!(c.finish(SamplePlan::Head(3)).is_err());
    }
}
