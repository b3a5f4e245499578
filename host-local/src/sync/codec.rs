//! How a partial travels to the state store: dense (`'D'` then every value) or, when fewer
//! than about two thirds of its values are non-zero, sparse (`'S'`, the length, then
//! `(index u32, value f64)` for each non-zero), whichever is smaller; little-endian. A
//! function whose rows touch few of a 2^20-feature model's coordinates sends those only.
//!
//! Decoding gives back the very same values (a zero left out is `+0.0`; `-0.0` and every
//! other value are kept bit for bit), so the reducer's sums in their fixed order, and hence
//! the model, are the same whichever encoding each partial took.

/// Bytes of the dense encoding's header (the tag).
const DENSE_HEADER: usize = 1;
/// Bytes of the sparse encoding's header (the tag and the length).
const SPARSE_HEADER: usize = 5;
/// Bytes per entry of the sparse encoding.
const SPARSE_ENTRY: usize = 12;

fn nonzero(v: f64) -> bool {
    v.to_bits() != 0
}

/// The bytes [`encode_partial`] gives for `v`, without encoding it.
pub fn encoded_len(v: &[f64]) -> usize {
    let nz = v.iter().filter(|&&x| nonzero(x)).count();
    (DENSE_HEADER + 8 * v.len()).min(SPARSE_HEADER + SPARSE_ENTRY * nz)
}

/// Encodes a partial, sparse when that is smaller.
pub fn encode_partial(v: &[f64]) -> Vec<u8> {
    let nz = v.iter().filter(|&&x| nonzero(x)).count();
    if SPARSE_HEADER + SPARSE_ENTRY * nz < DENSE_HEADER + 8 * v.len() && v.len() <= u32::MAX as usize {
        let mut out = Vec::with_capacity(SPARSE_HEADER + SPARSE_ENTRY * nz);
        out.push(b'S');
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        for (i, &x) in v.iter().enumerate().filter(|(_, &x)| nonzero(x)) {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    } else {
        let mut out = Vec::with_capacity(DENSE_HEADER + 8 * v.len());
        out.push(b'D');
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        out
    }
}

/// Decodes [`encode_partial`]'s bytes (`None`: not such bytes).
pub fn decode_partial(b: &[u8]) -> Option<Vec<f64>> {
    let f64_at = |c: &[u8]| f64::from_le_bytes(c.try_into().expect("8 bytes"));
    match b.split_first()? {
        (b'D', rest) if rest.len().is_multiple_of(8) => Some(rest.chunks_exact(8).map(f64_at).collect()),
        (b'S', rest) if rest.len() >= 4 && (rest.len() - 4).is_multiple_of(SPARSE_ENTRY) => {
            let len = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
            let mut out = vec![0.0; len];
            let mut last: Option<usize> = None;
            for e in rest[4..].chunks_exact(SPARSE_ENTRY) {
                let i = u32::from_le_bytes(e[..4].try_into().ok()?) as usize;
                // Strictly increasing indices within the length, as the encoder writes them.
                if i >= len || last.is_some_and(|l| i <= l) {
                    return None;
                }
                out[i] = f64_at(&e[4..]);
                last = Some(i);
            }
            Some(out)
        }
        _ => None,
    }
}

/// The coordinates of `new` whose bits differ from `base`, as `'U'`, the length, then
/// `(index u32, new value f64)` pairs: what a function that holds `base` needs to get `new`
/// bit for bit. `None` when that is not smaller than [`encode_partial`] of `new` (or the
/// lengths differ). A mini-batch step changes only the weights of its rows' features.
pub fn encode_changes(base: &[f64], new: &[f64]) -> Option<Vec<u8>> {
    if base.len() != new.len() || new.len() > u32::MAX as usize {
        return None;
    }
    let changed = base.iter().zip(new).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    if SPARSE_HEADER + SPARSE_ENTRY * changed >= encoded_len(new) {
        return None;
    }
    let mut out = Vec::with_capacity(SPARSE_HEADER + SPARSE_ENTRY * changed);
    out.push(b'U');
    out.extend_from_slice(&(new.len() as u32).to_le_bytes());
    for (i, (a, b)) in base.iter().zip(new).enumerate() {
        if a.to_bits() != b.to_bits() {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
    }
    Some(out)
}

/// Whether `b` is [`encode_changes`]'s bytes (which need the base to decode).
pub fn is_changes(b: &[u8]) -> bool {
    b.first() == Some(&b'U')
}

/// `base` with [`encode_changes`]'s bytes applied (`None`: not such bytes, or for another
/// length).
pub fn apply_changes(base: &[f64], b: &[u8]) -> Option<Vec<f64>> {
    let rest = b.strip_prefix(b"U")?;
    if rest.len() < 4 || !(rest.len() - 4).is_multiple_of(SPARSE_ENTRY) {
        return None;
    }
    if u32::from_le_bytes(rest[..4].try_into().ok()?) as usize != base.len() {
        return None;
    }
    let mut out = base.to_vec();
    for e in rest[4..].chunks_exact(SPARSE_ENTRY) {
        let i = u32::from_le_bytes(e[..4].try_into().ok()?) as usize;
        *out.get_mut(i)? = f64::from_le_bytes(e[4..].try_into().ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_partials_travel_as_index_value_pairs_and_come_back_bit_for_bit() {
        let mut v = vec![0.0; 1000];
        v[3] = 1.5;
        v[999] = -0.0;
        v[500] = f64::MIN_POSITIVE;
        let b = encode_partial(&v);
        assert_eq!((b[0], b.len(), encoded_len(&v)), (b'S', 5 + 3 * 12, 5 + 3 * 12));
        let back = decode_partial(&b).unwrap();
        assert!(back.iter().zip(&v).all(|(a, b)| a.to_bits() == b.to_bits()), "bit for bit, -0.0 included");
    }

    #[test]
    fn a_model_that_changed_in_few_places_travels_as_its_changes() {
        let base: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5 - 3.0).collect();
        let mut new = base.clone();
        new[10] = 7.25;
        new[999] = -0.0 * new[999].signum();
        new[500] = f64::NAN;
        let b = encode_changes(&base, &new).unwrap();
        assert!(is_changes(&b) && b.len() == 5 + 3 * 12, "{}", b.len());
        let got = apply_changes(&base, &b).unwrap();
        assert!(got.iter().zip(&new).all(|(a, b)| a.to_bits() == b.to_bits()), "bit for bit");
        assert_eq!(decode_partial(&b), None, "changes need their base");
        assert_eq!(apply_changes(&base[..999], &b), None, "another length");
        // Everything changed: the plain encoding is smaller, so no changes are made.
        let moved: Vec<f64> = base.iter().map(|v| v + 1.0).collect();
        assert_eq!(encode_changes(&base, &moved), None);
    }

    #[test]
    fn dense_partials_stay_dense() {
        let v: Vec<f64> = (0..10).map(|i| i as f64 + 0.5).collect();
        let b = encode_partial(&v);
        assert_eq!((b[0], b.len(), encoded_len(&v)), (b'D', 81, 81));
        assert_eq!(decode_partial(&b).unwrap(), v);
        assert_eq!(decode_partial(&encode_partial(&[])).unwrap(), Vec::<f64>::new());
    }

    #[test]
    fn malformed_bytes_are_refused() {
        assert_eq!(decode_partial(b"S\x02\0\0\0").unwrap(), vec![0.0, 0.0], "all zeros: no entries");
        for b in [&b""[..], b"D1234567", b"S\x02\0\0", b"X", b"S\x01\0\0\0\x05\0\0\0\0\0\0\0\0\0\0\0"] {
            assert_eq!(decode_partial(b), None, "{b:?}");
        }
        // Indices out of order.
        let mut b = vec![b'S', 4, 0, 0, 0];
        for i in [2u32, 1] {
            b.extend(i.to_le_bytes());
            b.extend(1.0f64.to_le_bytes());
        }
        assert_eq!(decode_partial(&b), None);
    }
}
