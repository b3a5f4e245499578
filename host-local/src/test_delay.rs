//! TEST ONLY: a straggler made on purpose. `IFP_TEST_DELAY=F:MS[,F:MS...]` makes function `F`
//! sleep `MS` milliseconds in each of its steps (counted as its compute), so that tests and
//! measurements of `--staleness` have one function slower than the others. It is read by
//! every host (threads, `ifp-worker` processes inherit it); nothing else sets it, and no
//! flag or documentation outside tests and measurements mentions it.

use std::time::Duration;

use crate::task::{FailureKind, FunctionFailure};

/// The variable's name.
pub const TEST_DELAY_ENV: &str = "IFP_TEST_DELAY";

/// The delay of function `function` per step (`None`: unset, or not this function).
pub fn of(function: u32) -> Result<Option<Duration>, FunctionFailure> {
    match std::env::var(TEST_DELAY_ENV) {
        Ok(v) if !v.is_empty() => parse(&v, function).map_err(|m| {
            FunctionFailure::new(FailureKind::BadInput, Some(function), None, format!("{TEST_DELAY_ENV}: {m}"))
        }),
        _ => Ok(None),
    }
}

fn parse(v: &str, function: u32) -> Result<Option<Duration>, String> {
    let mut found = None;
    for item in v.split(',') {
        let (f, ms) = item.split_once(':').ok_or_else(|| format!("expected FUNCTION:MILLISECONDS, got {item:?}"))?;
        let f: u32 = f.trim().parse().map_err(|_| format!("not a function index: {f:?}"))?;
        let ms: u64 = ms.trim().parse().map_err(|_| format!("not a number of milliseconds: {ms:?}"))?;
        if f == function {
            found = Some(Duration::from_millis(ms));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_per_function_delays() {
        assert_eq!(parse("2:50", 2), Ok(Some(Duration::from_millis(50))));
        assert_eq!(parse("2:50", 1), Ok(None));
        assert_eq!(parse("0:5, 3:7", 3), Ok(Some(Duration::from_millis(7))));
        assert!(parse("2", 2).unwrap_err().contains("FUNCTION:MILLISECONDS"));
        assert!(parse("x:5", 2).unwrap_err().contains("\"x\""));
    }
}
