//! The sweep's configurations: `functions × inner workers`, from `--grid`, `--total-vcpus` or
//! `--functions`/`--max-inner`; the first configuration of a grid is the baseline.

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

/// One configuration: `workers` functions with `inner` vCPUs (wasm instances) each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    pub workers: u32,
    pub inner: u32,
}

impl Config {
    pub fn vcpus(&self) -> u32 {
        self.workers.saturating_mul(self.inner)
    }
    pub fn label(&self) -> String {
        format!("{}x{}", self.workers, self.inner)
    }
}

/// Parses `6x1,3x2,2x3,1x6`.
pub fn parse_grid(s: &str) -> Result<Vec<Config>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (w, m) = item
            .split_once(['x', 'X'])
            .with_context(|| format!("--grid entry '{item}' is not FUNCTIONSxINNER (e.g. 3x2)"))?;
        let count = |n: &str, what: &str| -> Result<u32> {
            n.trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("--grid entry '{item}': {what} must be a positive integer"))
        };
        let c = Config { workers: count(w, "functions")?, inner: count(m, "inner workers")? };
        if out.contains(&c) {
            bail!("--grid lists {item} twice");
        }
        out.push(c);
    }
    if out.is_empty() {
        bail!("--grid '{s}' lists no configuration");
    }
    Ok(out)
}

/// The same total vCPUs factored every way, baseline `n × 1` first (the first experiment).
pub fn total_vcpus_grid(n: u32) -> Vec<Config> {
    (1..=n).rev().filter(|w| n.is_multiple_of(*w)).map(|w| Config { workers: w, inner: n / w }).collect()
}

/// A fixed number of functions with 1..=max inner workers, baseline `f × 1` (the second).
pub fn functions_grid(functions: u32, max_inner: u32) -> Vec<Config> {
    (1..=max_inner).map(|m| Config { workers: functions, inner: m }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids() {
        assert_eq!(
            parse_grid("6x1, 3x2,2X3").unwrap().iter().map(Config::label).collect::<Vec<_>>(),
            ["6x1", "3x2", "2x3"]
        );
        assert!(parse_grid("6x0").unwrap_err().to_string().contains("'6x0'"));
        assert!(parse_grid("6by2").unwrap_err().to_string().contains("'6by2' is not FUNCTIONSxINNER"));
        assert!(parse_grid("2x2,2x2").unwrap_err().to_string().contains("twice"));
        assert_eq!(total_vcpus_grid(6).iter().map(Config::label).collect::<Vec<_>>(), ["6x1", "3x2", "2x3", "1x6"]);
        assert_eq!(functions_grid(4, 3).iter().map(Config::label).collect::<Vec<_>>(), ["4x1", "4x2", "4x3"]);
    }
}
