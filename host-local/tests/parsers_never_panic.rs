//! Users' files reach two parsers: the `.npy` header and CSV text. Whatever the bytes, opening
//! and reading a file returns rows or one clear line, never a panic (property tests: random
//! headers after a valid magic string, random shapes including ones whose byte count
//! overflows, and random CSV text).

use std::io::Write as _;

use ifp_host::data::object::S3Connector;
use ifp_host::data::{Data, LabelCol};
use proptest::prelude::*;

/// Opens `bytes` as a file named `name` and reads every row; an error must be one line.
fn open_and_read(name: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    let s3 = S3Connector::new(None);
    let result = Data::open(path.to_str().unwrap(), LabelCol::None, Default::default(), &s3, None).and_then(|d| {
        let n = d.shape()?.total_rows;
        d.read(0..n.min(1000)).map(|_| ())
    });
    if let Err(e) = result {
        let line = e.to_string();
        assert!(!line.contains('\n') && !line.is_empty(), "not one line: {line:?}");
    }
}

/// A `.npy` v1 file with header text `dict` (padded as numpy pads it) and `body` bytes.
fn npy(dict: &str, body: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    out.extend(body);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_npy_header_text_is_read_or_refused_in_one_line(dict in ".{0,120}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
        open_and_read("x.npy", &npy(&dict, &body));
    }

    #[test]
    fn any_npy_shape_is_read_or_refused_in_one_line(
        rows in prop_oneof![0u64..5, Just(u64::MAX), Just(1u64 << 62), any::<u64>()],
        cols in prop_oneof![0u64..5, Just(u64::MAX), Just(1u64 << 33), any::<u64>()],
        f64 in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let descr = if f64 { "<f8" } else { "<f4" };
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
        open_and_read("x.npy", &npy(&dict, &body));
    }

    #[test]
    fn any_csv_text_is_read_or_refused_in_one_line(text in "([0-9eE+.,\\- \"a\\n\\r]|nan|inf){0,200}") {
        open_and_read("x.csv", text.as_bytes());
    }

    #[test]
    fn any_bytes_as_csv_are_read_or_refused_in_one_line(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        open_and_read("x.csv", &bytes);
    }
}
