//! A kernel names the rows of the chunk it was given ("row N of this chunk", 1-based); the
//! user knows rows of the data. These rewrite such messages.

/// A kernel names a row of the chunk it was given as "row N of this chunk" (1-based); the user
/// knows rows of the data. `first` is the chunk's first row in the data (0-based).
pub(crate) fn rows_of_the_data(message: &str, first: u64) -> String {
    rows_of(message, first, "of the data")
}

/// "row N of this chunk" in `message` as "row first+N `whole`".
pub(crate) fn rows_of(message: &str, first: u64, whole: &str) -> String {
    const TAIL: &str = " of this chunk";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(TAIL) {
        let head = &rest[..at];
        let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let number = head[head.len() - digits..].parse::<u64>().ok();
        match number.filter(|_| head[..head.len() - digits].ends_with("row ")) {
            Some(n) if n >= 1 => {
                out.push_str(&head[..head.len() - digits]);
                out.push_str(&format!("{} {whole}", first + n));
            }
            _ => {
                out.push_str(head);
                out.push_str(TAIL);
            }
        }
        rest = &rest[at + TAIL.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_rows_of_a_chunk_become_rows_of_the_data() {
        let m = "kernel 'logreg' failed in shard.append: label 2 in row 2 of this chunk is not 0 or 1";
        assert_eq!(
            super::rows_of_the_data(m, 1),
            "kernel 'logreg' failed in shard.append: label 2 in row 3 of the data is not 0 or 1"
        );
        // Nothing else changes: other numbers, and text without a row.
        assert_eq!(super::rows_of_the_data("3 of this chunk", 10), "3 of this chunk");
        assert_eq!(super::rows_of_the_data("no rows here", 10), "no rows here");
        // A CSV object's part: rows of the part, from its first byte.
        assert_eq!(
            super::rows_of("label 7 in row 2 of this chunk", 5, "of the part's rows (from byte 100)"),
            "label 7 in row 7 of the part's rows (from byte 100)"
        );
    }
}
