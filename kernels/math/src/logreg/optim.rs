//! How logistic regression turns a gradient into the next model: plain (stochastic) gradient
//! steps, momentum (optionally Nesterov's), or Adam; a learning-rate schedule; L2 in the
//! gradient and L1 as a proximal step. Everything here runs in `update`, once per iteration,
//! on the summed partial, so it costs nothing per row.
//!
//! The optimiser's state (velocity, Adam's moments) and the update count belong to the model,
//! after the parameters: `[θ | state | t | previous loss]`. A function that rejoins or a job
//! that continues gets them with the model, and every configuration computes the same ones.
//! The defaults (full batch, `sgd`, constant rate, no L1) keep the original layout
//! `[θ | previous loss]` and the original arithmetic.
//!
//! Conventions (those of PyTorch's `SGD`/`Adam` and scikit-learn's `SGDClassifier`):
//! - momentum: `v ← μ v + g`, `θ ← θ − η v`; Nesterov: `θ ← θ − η (g + μ v)` with the new `v`;
//! - Adam: `m ← β1 m + (1 − β1) g`, `s ← β2 s + (1 − β2) g²`,
//!   `θ ← θ − η (m / (1 − β1^t)) / (sqrt(s / (1 − β2^t)) + ε)`;
//! - schedules, for update `t = 1, 2, ...`: constant `η`, `invscaling` `η / t^power-t`,
//!   `step` `η · gamma^floor((t − 1) / step-size)`;
//! - L1: after the step, weights (not intercepts) shrink by `η_t · l1` towards 0, and stop at 0.

use crate::params::Params;

/// Parameter names this module reads.
pub const PARAMS: &[&str] =
    &["optimizer", "momentum", "beta1", "beta2", "epsilon", "lr-schedule", "power-t", "step-size", "gamma", "l1"];

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd,
    Momentum { mu: f64, nesterov: bool },
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

/// The learning rate as a function of the update count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    InvScaling { power: f64 },
    Step { every: u64, gamma: f64 },
}

/// Checked optimiser settings. Defaults: `optimizer = sgd`, `momentum = 0.9`, `beta1 = 0.9`,
/// `beta2 = 0.999`, `epsilon = 1e-8`, `lr-schedule = constant`, `power-t = 0.5`,
/// `step-size = 10`, `gamma = 0.5`, `l1 = 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optim {
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub l1: f64,
}

/// A value in `[0, 1)`.
fn fraction(p: &Params, name: &str, default: f64) -> Result<f64, String> {
    let v = p.nonneg_or(name, default)?;
    if v >= 1.0 {
        return Err(format!("logreg parameter '{name}' must be in [0, 1), got {v}"));
    }
    Ok(v)
}

impl Optim {
    pub fn parse(p: &Params) -> Result<Self, String> {
        let optimizer = match p.choice_or("optimizer", &["sgd", "momentum", "nesterov", "adam"])? {
            "sgd" => Optimizer::Sgd,
            "adam" => Optimizer::Adam {
                beta1: fraction(p, "beta1", 0.9)?,
                beta2: fraction(p, "beta2", 0.999)?,
                eps: p.positive_or("epsilon", 1e-8)?,
            },
            name => Optimizer::Momentum { mu: fraction(p, "momentum", 0.9)?, nesterov: name == "nesterov" },
        };
        let schedule = match p.choice_or("lr-schedule", &["constant", "invscaling", "step"])? {
            "constant" => Schedule::Constant,
            "invscaling" => Schedule::InvScaling { power: p.nonneg_or("power-t", 0.5)? },
            _ => {
                let every = p.u64_or("step-size", 10)?;
                if every == 0 {
                    return Err("logreg parameter 'step-size' must be at least 1, got 0".into());
                }
                Schedule::Step { every, gamma: p.positive_or("gamma", 0.5)? }
            }
        };
        Ok(Self { optimizer, schedule, l1: p.nonneg_or("l1", 0.0)? })
    }

    /// Whether the model needs the extended layout (state and update count).
    pub fn extended(&self, mini_batch: bool) -> bool {
        mini_batch || self.optimizer != Optimizer::Sgd || self.schedule != Schedule::Constant || self.l1 > 0.0
    }

    /// How many vectors of the parameters' size the optimiser keeps.
    pub fn state_vectors(&self) -> usize {
        match self.optimizer {
            Optimizer::Sgd => 0,
            Optimizer::Momentum { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    /// The learning rate of update `t` (1-based).
    pub fn rate(&self, lr: f64, t: u64) -> f64 {
        match self.schedule {
            Schedule::Constant => lr,
            Schedule::InvScaling { power } => lr / (t as f64).powf(power),
            Schedule::Step { every, gamma } => lr * gamma.powi(((t - 1) / every) as i32),
        }
    }

    /// One update of `theta` (the first `weights` values are weights, the rest intercepts)
    /// with gradient `g`, learning rate `eta` and update count `t` (1-based); `state` holds
    /// [`Optim::state_vectors`] vectors of `theta`'s length.
    pub fn step(&self, theta: &mut [f64], state: &mut [f64], g: &[f64], eta: f64, t: u64, weights: usize) {
        let n = theta.len();
        match self.optimizer {
            Optimizer::Sgd => theta.iter_mut().zip(g).for_each(|(x, g)| *x -= eta * g),
            Optimizer::Momentum { mu, nesterov } => {
                for ((x, v), &g) in theta.iter_mut().zip(&mut state[..n]).zip(g) {
                    *v = mu * *v + g;
                    *x -= eta * if nesterov { g + mu * *v } else { *v };
                }
            }
            Optimizer::Adam { beta1, beta2, eps } => {
                let (m, s) = state.split_at_mut(n);
                let (c1, c2) = (1.0 - beta1.powi(t as i32), 1.0 - beta2.powi(t as i32));
                for (((x, m), s), &g) in theta.iter_mut().zip(m).zip(s).zip(g) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *s = beta2 * *s + (1.0 - beta2) * g * g;
                    *x -= eta * (*m / c1) / ((*s / c2).sqrt() + eps);
                }
            }
        }
        if self.l1 > 0.0 {
            let shrink = eta * self.l1;
            for x in &mut theta[..weights] {
                *x = x.signum() * (x.abs() - shrink).max(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Param;

    fn optim(list: &[(&str, &str)]) -> Result<Optim, String> {
        let l: Vec<Param> = list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        Optim::parse(&Params::new("logreg", &l, PARAMS)?)
    }

    #[test]
    fn adam_first_step_moves_each_coordinate_by_the_rate() {
        // With bias correction, Adam's first step is η · g / (|g| + ε) ≈ η · sign(g).
        let o = optim(&[("optimizer", "adam")]).unwrap();
        let (mut x, mut st) = ([1.0, -2.0], [0.0; 4]);
        o.step(&mut x, &mut st, &[0.3, -4.0], 0.1, 1, 1);
        assert!((x[0] - 0.9).abs() < 1e-7 && (x[1] + 1.9).abs() < 1e-7, "{x:?}");
    }

    #[test]
    fn momentum_nesterov_schedules_and_l1_by_hand() {
        let o = optim(&[("optimizer", "nesterov"), ("momentum", "0.5"), ("l1", "1")]).unwrap();
        let (mut x, mut v) = ([1.0, 1.0], [2.0, 0.0]);
        // v ← 0.5·2 + 1 = 2; x ← 1 − 0.1·(1 + 0.5·2) = 0.8, then L1 (weight only): 0.8 − 0.1 = 0.7.
        o.step(&mut x, &mut v, &[1.0, 0.0], 0.1, 1, 1);
        assert!((v[0] - 2.0).abs() < 1e-15 && (x[0] - 0.7).abs() < 1e-15 && x[1] == 1.0, "{x:?} {v:?}");
        let s = optim(&[("lr-schedule", "step"), ("step-size", "2"), ("gamma", "0.1")]).unwrap();
        assert_eq!([s.rate(1.0, 1), s.rate(1.0, 2), s.rate(1.0, 3)], [1.0, 1.0, 0.1f64.powi(1)]);
        let s = optim(&[("lr-schedule", "invscaling"), ("power-t", "0.5")]).unwrap();
        assert_eq!(s.rate(1.0, 4), 0.5);
    }

    #[test]
    fn bad_optimiser_settings_name_the_value() {
        assert_eq!(
            optim(&[("optimizer", "rmsprop")]).unwrap_err(),
            "logreg parameter 'optimizer' must be one of sgd, momentum, nesterov, adam, got 'rmsprop'"
        );
        assert_eq!(
            optim(&[("optimizer", "adam"), ("beta2", "1")]).unwrap_err(),
            "logreg parameter 'beta2' must be in [0, 1), got 1"
        );
    }
}
