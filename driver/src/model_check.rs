//! The model checked out of sample: its sync term, fitted on the sweep's few functions,
//! against the synchronisation of many functions simulated on the same Redis
//! ([`ifp_host::sync::simulate`], `ifp sweep --model --simulate-sync F1,F2,...`). For each
//! simulated `F`: the model's prediction with its 95 % interval, the relative error
//! `(model − simulated) / simulated`, and whether the simulated value fell inside the interval.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::model::Params;
use crate::output;

/// One simulated function count, against the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncCheckRow {
    pub functions: u32,
    pub simulated_sync_ms: f64,
    pub model_sync_ms: f64,
    pub model_sync_ms_low: f64,
    pub model_sync_ms_high: f64,
    /// `(model − simulated) / simulated`.
    pub error: f64,
    /// The simulated value lies inside the model's interval (false without an interval).
    pub within_interval: bool,
}

/// The model's sync term against `simulated` (function count, simulated sync per
/// iteration in seconds).
pub fn sync_check(params: &Params, simulated: &[(u32, f64)]) -> Vec<SyncCheckRow> {
    simulated
        .iter()
        .map(|&(f, sim_s)| {
            let model = params.sync_s(f);
            let (low, high) = params.sync_interval_s(f);
            SyncCheckRow {
                functions: f,
                simulated_sync_ms: sim_s * 1e3,
                model_sync_ms: model * 1e3,
                model_sync_ms_low: low * 1e3,
                model_sync_ms_high: high * 1e3,
                error: (model - sim_s) / sim_s,
                within_interval: (low..=high).contains(&sim_s),
            }
        })
        .collect()
}

/// The out-of-sample table.
pub fn markdown(rows: &[SyncCheckRow]) -> String {
    let mut s = String::from(
        "| simulated functions | simulated sync ms/iter | model sync ms/iter | model 95% interval | error | inside |\n",
    );
    s.push_str("|---:|---:|---:|---|---:|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3}–{:.3} | {:+.1}% | {} |",
            r.functions,
            r.simulated_sync_ms,
            r.model_sync_ms,
            r.model_sync_ms_low,
            r.model_sync_ms_high,
            r.error * 100.0,
            if r.within_interval { "yes" } else { "no" }
        );
    }
    s
}

/// Writes `model-check-sync.csv`.
pub fn write_csv(dir: &Path, rows: &[SyncCheckRow]) -> Result<()> {
    output::write_atomic(&dir.join("model-check-sync.csv"), |w| {
        let mut c = csv::Writer::from_writer(w);
        rows.iter().try_for_each(|r| c.serialize(r))?;
        c.flush()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Observation, StoreProbe};
    use crate::pricing::Prices;

    fn obs(functions: u32, sync_s: f64) -> Observation {
        Observation {
            functions,
            inner: 1,
            rows: 1_000_000,
            bytes_per_row: 64.0,
            iterations: 10,
            total_s: 12.0,
            load_s: 0.5,
            compute_s: 1.0,
            sync_s,
            round_trips: 2.0,
            batch_rows: None,
        }
    }

    /// By hand: r = 2, RTT = 1 ms, s = 0, so y = sync − 2 ms: 1 ms (F = 1), 3 ms (F = 2),
    /// 2.5 ms (F = 3). γ = Σ F·y / Σ F² = (1 + 6 + 7.5) / 14 = 14.5/14 ms = 1.0357 ms.
    /// Residuals y − F·γ: (14 − 14.5)/14, (42 − 29)/14, (35 − 43.5)/14 ms; Σe² = (0.25 + 169 +
    /// 72.25)/196 = 241.5/196 ms²; sd = √(241.5/196/2) = 0.78490 ms; t(0.975, 2) = 4.303.
    #[test]
    fn out_of_sample_errors_and_intervals_by_hand() {
        let store = StoreProbe { rtt_s: 1e-3, direct_rtt_s: None, service_s: 0.0, source: "test".into() };
        let p = Params::fit(&[obs(1, 3e-3), obs(2, 5e-3), obs(3, 4.5e-3)], store, None).unwrap();
        let gamma_ms = 14.5 / 14.0;
        assert!((p.per_function_sync_s * 1e3 - gamma_ms).abs() < 1e-12);
        let sd_ms = (241.5f64 / 196.0 / 2.0).sqrt();
        assert!((p.sync_residual_sd_s.unwrap() * 1e3 - sd_ms).abs() < 1e-12, "{:?}", p.sync_residual_sd_s);
        // Simulated: 10 ms at F = 8, 20 ms at F = 100.
        let rows = sync_check(&p, &[(8, 0.010), (100, 0.020)]);
        // F = 8: model 2 + 8·γ = 10.2857 ms; error +2.857 %; half-width 4.303·sd·√(1 + 64/14)
        // = 7.972 ms: 2.314–18.258 ms holds 10 ms.
        let m8 = 2.0 + 8.0 * gamma_ms;
        let h8 = 4.303 * sd_ms * (1.0 + 64.0 / 14.0f64).sqrt();
        assert!((rows[0].model_sync_ms - m8).abs() < 1e-9);
        assert!((rows[0].error - (m8 - 10.0) / 10.0).abs() < 1e-12);
        assert!((rows[0].model_sync_ms_low - (m8 - h8)).abs() < 1e-9);
        assert!((rows[0].model_sync_ms_high - (m8 + h8)).abs() < 1e-9);
        assert!(rows[0].within_interval);
        // F = 100: model 2 + 100·γ = 105.571 ms against 20 ms simulated: +427.9 %; the
        // interval 105.571 ± 4.303·sd·√(1 + 10000/14) = ± 90.329 ms, 15.243–195.900 ms, holds
        // it: an extrapolation this far is that uncertain.
        let m100 = 2.0 + 100.0 * gamma_ms;
        let h100 = 4.303 * sd_ms * (1.0 + 10000.0 / 14.0f64).sqrt();
        assert!((rows[1].error - (m100 - 20.0) / 20.0).abs() < 1e-12);
        assert!((rows[1].model_sync_ms_low - (m100 - h100).max(0.0)).abs() < 1e-9);
        assert!((rows[1].model_sync_ms_low - 15.2425).abs() < 1e-3, "{:?}", rows[1]);
        assert!(rows[1].within_interval);
        let outside = sync_check(&p, &[(100, 0.010)]);
        assert!(!outside[0].within_interval, "10 ms is below 15.24 ms");
        let md = markdown(&rows);
        assert!(md.contains("| 8 | 10.000 | 10.286 |"), "{md}");
        assert!(md.contains("+2.9%"), "{md}");
        // The predictions carry the same interval, and into the total: 10 iterations.
        let q = p.predict(100, 1, 1_000_000, 10, Prices::X86_64);
        assert!((q.model_sync_ms_high - (m100 + h100)).abs() < 1e-9);
        assert!((q.model_total_s_high - q.model_total_s - 10.0 * h100 / 1e3).abs() < 1e-9);
        assert!(q.model_cost_usd_high > q.model_cost_usd && q.model_cost_usd_low < q.model_cost_usd);
    }

    #[test]
    fn one_measured_configuration_gives_no_interval() {
        let store = StoreProbe { rtt_s: 1e-3, ..Default::default() };
        let p = Params::fit(&[obs(1, 3e-3)], store, None).unwrap();
        let r = &sync_check(&p, &[(64, 0.01)])[0];
        assert!(r.model_sync_ms_low.is_nan() && r.model_sync_ms_high.is_nan() && !r.within_interval);
    }
}
