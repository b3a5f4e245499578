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
