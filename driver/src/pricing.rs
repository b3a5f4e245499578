//! AWS Lambda prices and sizing, in one place: what a GB-second and a request cost on each
//! architecture, how much memory buys how many vCPUs, and what a run of functions costs.
//!
//! Prices are AWS's published on-demand rates for us-east-1: $0.0000166667 per GB-second on
//! x86_64, $0.0000133334 per GB-second on arm64 (Graviton), and $0.20 per million requests
//! on both (<https://aws.amazon.com/lambda/pricing/>). Lambda bills each invocation's
//! duration rounded up to the millisecond, times its configured memory.
//!
//! Sizing: a function's CPU share follows its configured memory, one vCPU per
//! [`MB_PER_VCPU`] MB, up to [`MAX_VCPUS`] at Lambda's largest size ([`MAX_MEMORY_MB`]).
//! The rule is the engine's own (`ifp_host::task`), by which the Lambda host sizes its
//! inner workers; it is re-exported here so the driver and the functions cannot disagree.

use serde::Serialize;

/// Memory that buys one vCPU of CPU time on Lambda, in MB (1,769), and the most vCPUs a
/// Lambda function gets (6, at [`MAX_MEMORY_MB`]).
pub use ifp_host::task::{MAX_VCPUS, MB_PER_VCPU};

/// The smallest memory a Lambda function can be configured with, in MB.
pub const MIN_MEMORY_MB: u64 = 128;

/// The largest memory a Lambda function can be configured with, in MB.
pub const MAX_MEMORY_MB: u64 = 10_240;

/// Price per request, USD (us-east-1, both architectures).
pub const PRICE_PER_REQUEST: f64 = 0.20 / 1e6;

/// Lambda prices of one architecture (us-east-1): per GB-second and per request, USD.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prices {
    pub gb_second: f64,
    pub request: f64,
}

impl Prices {
    /// x86_64 functions.
    pub const X86_64: Prices = Prices { gb_second: 0.000_016_666_7, request: PRICE_PER_REQUEST };
    /// arm64 (Graviton) functions.
    pub const ARM64: Prices = Prices { gb_second: 0.000_013_333_4, request: PRICE_PER_REQUEST };
}

/// The function's architecture, for prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    /// This architecture's prices.
    pub fn prices(self) -> Prices {
        match self {
            Arch::X86_64 => Prices::X86_64,
            Arch::Arm64 => Prices::ARM64,
        }
    }

    /// The name Lambda and `--arch` use.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// Memory that buys `vcpus` vCPUs on Lambda: [`MB_PER_VCPU`] each, within
/// [`MIN_MEMORY_MB`]..=[`MAX_MEMORY_MB`] (so 6 vCPUs and more get 10,240 MB).
pub fn lambda_memory_mb(vcpus: u32) -> u32 {
    (u64::from(vcpus) * MB_PER_VCPU).clamp(MIN_MEMORY_MB, MAX_MEMORY_MB) as u32
}

/// GB-seconds billed for one invocation of `duration_s` seconds with `memory_mb` configured:
/// the duration rounded up to the millisecond, times the memory in GB (1,024 MB).
pub fn billed_gb_seconds(duration_s: f64, memory_mb: u32) -> f64 {
    (duration_s * 1000.0).ceil() / 1000.0 * (memory_mb as f64 / 1024.0)
}

/// Estimated Lambda cost of one run, USD: one invocation per entry of `function_s` (each
/// function's duration, seconds), every function configured with `memory_mb`.
pub fn cost_usd(function_s: &[f64], memory_mb: u32, p: Prices) -> f64 {
    function_s.iter().map(|&s| billed_gb_seconds(s, memory_mb) * p.gb_second + p.request).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_the_published_us_east_1_rates() {
        assert_eq!(Prices::X86_64.gb_second, 0.0000166667);
        assert_eq!(Prices::ARM64.gb_second, 0.0000133334);
        // $0.20 per million requests on both.
        assert!((Prices::X86_64.request * 1e6 - 0.20).abs() < 1e-12);
        assert_eq!(Prices::ARM64.request, Prices::X86_64.request);
        assert_eq!(PRICE_PER_REQUEST, Prices::X86_64.request);
        assert_eq!(Arch::X86_64.prices(), Prices::X86_64);
        assert_eq!(Arch::Arm64.prices(), Prices::ARM64);
    }

    #[test]
    fn architectures_are_named_as_lambda_names_them() {
        use clap::ValueEnum as _;
        assert_eq!(Arch::X86_64.name(), "x86_64");
        assert_eq!(Arch::Arm64.name(), "arm64");
        assert_eq!(Arch::from_str("x86_64", false), Ok(Arch::X86_64));
        assert_eq!(Arch::from_str("arm64", false), Ok(Arch::Arm64));
    }

    #[test]
    fn memory_buys_one_vcpu_per_1769_mb_up_to_10240() {
        assert_eq!(MB_PER_VCPU, 1769);
        assert_eq!(MAX_VCPUS, 6);
        assert_eq!(lambda_memory_mb(1), 1769);
        assert_eq!(lambda_memory_mb(2), 3538);
        assert_eq!(lambda_memory_mb(5), 8845);
        // 6 × 1,769 = 10,614: Lambda's largest size, 10,240 MB, already gives 6 vCPUs.
        assert_eq!(lambda_memory_mb(6), 10_240);
        assert_eq!(lambda_memory_mb(40), 10_240);
        assert_eq!(lambda_memory_mb(0), 128);
    }

    #[test]
    fn billing_rounds_each_invocation_up_to_the_millisecond() {
        assert_eq!(billed_gb_seconds(1.0, 1024), 1.0);
        assert!((billed_gb_seconds(1.0001, 1024) - 1.001).abs() < 1e-12);
        assert!((billed_gb_seconds(2.0, 512) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn costs_by_hand() {
        // Two functions of 1,024 MB for 1 s on x86_64: 2 GB-s × $0.0000166667 + 2 requests × $0.0000002.
        let c = cost_usd(&[1.0, 1.0], 1024, Prices::X86_64);
        assert!((c - 0.000_033_733_4).abs() < 1e-15, "{c}");
        // One function of 3,538 MB (2 vCPUs) for 10 s on arm64: 34.55078125 GB-s × $0.0000133334
        // + $0.0000002 = $0.00046087938671875.
        let c = cost_usd(&[10.0], lambda_memory_mb(2), Prices::ARM64);
        assert!((c - 0.000_460_879_386_718_75).abs() < 1e-15, "{c}");
        // Two functions of 1,769 MB for 1.5 s and 2.0004 s (billed 2.001 s).
        let c = cost_usd(&[1.5, 2.0004], 1769, Prices::X86_64);
        let want = (1.5 + 2.001) * (1769.0 / 1024.0) * 0.000_016_666_7 + 2.0 * 0.2e-6;
        assert!((c - want).abs() < 1e-15, "{c} vs {want}");
        assert_eq!(cost_usd(&[], 1769, Prices::X86_64), 0.0);
    }
}
