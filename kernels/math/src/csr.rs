//! Rows in compressed sparse row form ([`Csr`]), as the `sparse` interface of the contract
//! passes them (`wit/sparse.wit`): row `r`'s non-zeros are `indices[offsets[r]..offsets[r +
//! 1]]` with the same range of `values`. A shard appends chunks of them and keeps one CSR of
//! all its rows; a row of 2^20 features with 30 non-zeros costs 30 entries.

/// A shard's sparse rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    /// `rows + 1` offsets into `indices` and `values`.
    pub offsets: Vec<u32>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Default for Csr {
    fn default() -> Self {
        Self { offsets: vec![0], indices: Vec::new(), values: Vec::new() }
    }
}

impl Csr {
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row `r` as `(indices, values)`.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let span = self.offsets[r] as usize..self.offsets[r + 1] as usize;
        (&self.indices[span.clone()], &self.values[span])
    }

    /// Appends a chunk of `labels.len()` rows over `cols` feature columns after checking it
    /// (nothing is appended if it is malformed). Errors name the row of the chunk (1-based).
    pub fn append(
        &mut self,
        cols: usize,
        offsets: &[u32],
        indices: &[u32],
        values: &[f32],
        rows: usize,
    ) -> Result<(), String> {
        if offsets.len() != rows + 1 {
            return Err(format!("{} sparse row offsets given for {rows} rows (expected {})", offsets.len(), rows + 1));
        }
        if offsets[0] != 0 {
            return Err(format!("the first sparse row offset is {}, expected 0", offsets[0]));
        }
        let nnz = offsets[rows] as usize;
        if indices.len() != nnz || values.len() != nnz {
            return Err(format!(
                "the sparse rows end at offset {nnz} but {} indices and {} values were given",
                indices.len(),
                values.len()
            ));
        }
        // Non-decreasing offsets that end at `nnz` stay within the entries.
        if let Some(r) = offsets.windows(2).position(|o| o[1] < o[0]) {
            let (a, b) = (offsets[r], offsets[r + 1]);
            return Err(format!("sparse row offsets decrease at row {} of this chunk ({a} then {b})", r + 1));
        }
        for r in 0..rows {
            let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
            let mut prev: Option<u32> = None;
            for (&i, &v) in indices[a..b].iter().zip(&values[a..b]) {
                if i as usize >= cols {
                    return Err(format!(
                        "feature index {i} in row {} of this chunk is not below the {cols} features",
                        r + 1
                    ));
                }
                if prev.is_some_and(|p| i <= p) {
                    return Err(format!(
                        "feature indices do not increase in row {} of this chunk ({} then {i})",
                        r + 1,
                        prev.unwrap_or(0)
                    ));
                }
                if !v.is_finite() {
                    return Err(format!("value {v} at feature {i} in row {} of this chunk is not finite", r + 1));
                }
                prev = Some(i);
            }
        }
        let base = *self.offsets.last().unwrap_or(&0);
        if base as u64 + nnz as u64 > u32::MAX as u64 {
            return Err(format!(
                "a shard holds at most {} non-zeros; this chunk brings it to {}",
                u32::MAX,
                base as u64 + nnz as u64
            ));
        }
        self.offsets.extend(offsets[1..].iter().map(|&o| base + o));
        self.indices.extend_from_slice(indices);
        self.values.extend_from_slice(values);
        Ok(())
    }

    pub fn reserve_rows(&mut self, rows: usize) {
        self.offsets.reserve_exact(rows);
    }
}

/// `Σ w[i]·v` over a sparse row, in f64.
#[inline]
pub fn dot(w: &[f64], indices: &[u32], values: &[f32]) -> f64 {
    let mut s = 0.0;
    for (&i, &v) in indices.iter().zip(values) {
        s += w[i as usize] * v as f64;
    }
    s
}

/// `out[i] += r·v` over a sparse row.
#[inline]
pub fn axpy(out: &mut [f64], r: f64, indices: &[u32], values: &[f32]) {
    for (&i, &v) in indices.iter().zip(values) {
        out[i as usize] += r * v as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_append_with_shifted_offsets() {
        let mut c = Csr::default();
        c.append(5, &[0, 2, 2], &[0, 4], &[1.0, 2.0], 2).unwrap();
        c.append(5, &[0, 1], &[3], &[-1.5], 1).unwrap();
        assert_eq!(c.offsets, vec![0, 2, 2, 3]);
        assert_eq!(c.row(2), (&[3u32][..], &[-1.5f32][..]));
        assert_eq!(c.row(1), (&[][..], &[][..]));
    }

    #[test]
    fn malformed_chunks_are_refused_and_leave_the_rows_alone() {
        let mut c = Csr::default();
        type Case<'a> = (&'a [u32], &'a [u32], &'a [f32], usize, &'a str);
        let cases: [Case; 6] = [
            (&[0, 1], &[5], &[1.0], 1, "feature index 5 in row 1 of this chunk is not below the 5 features"),
            (&[0, 2], &[3, 3], &[1.0, 1.0], 1, "feature indices do not increase in row 1 of this chunk (3 then 3)"),
            (&[0, 2, 1], &[1], &[1.0], 2, "sparse row offsets decrease at row 2 of this chunk (2 then 1)"),
            (&[0, 1], &[1], &[f32::NAN], 1, "value NaN at feature 1 in row 1 of this chunk is not finite"),
            (&[1, 1], &[], &[], 1, "the first sparse row offset is 1, expected 0"),
            (&[0, 1], &[1], &[], 1, "the sparse rows end at offset 1 but 1 indices and 0 values were given"),
        ];
        for (o, i, v, n, want) in cases {
            assert_eq!(c.append(5, o, i, v, n).unwrap_err(), want);
        }
        assert_eq!(c, Csr::default());
    }

    #[test]
    fn dot_and_axpy_by_hand() {
        let w = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(dot(&w, &[1, 3], &[0.5, -1.0]), 1.0 - 4.0);
        let mut out = [0.0; 4];
        axpy(&mut out, 2.0, &[0, 2], &[1.0, 0.25]);
        assert_eq!(out, [2.0, 0.0, 0.5, 0.0]);
    }
}
