//! Seeded inputs and error measures shared by the kernel self-checks, the
//! tests, `framecast doctor` and the browser checks.

/// A small deterministic generator (SplitMix64) for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Approximately standard normal (sum of uniforms; enough for test data).
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * (3.0f32 / 4.0).sqrt()
    }

    pub fn uniform_vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform() * scale).collect()
    }

    pub fn normal_vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

/// Normalised mean squared error: sum((got - want)^2) / sum(want^2).
/// Infinite when lengths differ or `got` holds a NaN.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut err, mut sig) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() {
            return f64::INFINITY;
        }
        err += (g as f64 - w as f64).powi(2);
        sig += (w as f64).powi(2);
    }
    err / sig.max(1e-30)
}

/// What a [`Check`]'s `nmse` field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Normalised mean squared error against the reference.
    Nmse,
    /// The fraction of elements that differ from the reference at all
    /// (exact comparisons: bytes, bits; the bound is 0).
    Mismatch,
    /// An absolute difference: the largest elementwise one, or a statistic's
    /// distance from its expected value.
    Abs,
}

/// The outcome of comparing one kernel case with its reference.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    /// The measured error, in the unit `metric` names (NMSE for most checks).
    pub nmse: f64,
    pub bound: f64,
    pub metric: Metric,
}

impl Check {
    pub fn new(name: impl Into<String>, got: &[f32], want: &[f32], bound: f64) -> Check {
        Check {
            name: name.into(),
            nmse: nmse(got, want),
            bound,
            metric: Metric::Nmse,
        }
    }

    /// Passes only when `got` equals `want` element for element.
    pub fn exact<T: PartialEq>(name: impl Into<String>, got: &[T], want: &[T]) -> Check {
        let differ = if got.len() == want.len() {
            let n = got.iter().zip(want).filter(|(g, w)| g != w).count();
            n as f64 / want.len().max(1) as f64
        } else {
            f64::INFINITY
        };
        Check {
            name: name.into(),
            nmse: differ,
            bound: 0.0,
            metric: Metric::Mismatch,
        }
    }

    /// Passes when `error` (an absolute difference) is at most `bound`.
    pub fn abs(name: impl Into<String>, error: f64, bound: f64) -> Check {
        Check {
            name: name.into(),
            nmse: if error.is_nan() { f64::INFINITY } else { error },
            bound,
            metric: Metric::Abs,
        }
    }

    pub fn passed(&self) -> bool {
        self.nmse <= self.bound
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.passed() { "ok  " } else { "FAIL" };
        let name = &self.name;
        match self.metric {
            Metric::Nmse => write!(
                f,
                "{verdict} {name:<48} nmse {:>9.2e} (bound {:.0e})",
                self.nmse, self.bound
            ),
            Metric::Mismatch if self.bound == 0.0 => {
                write!(f, "{verdict} {name:<48} differ {:>7.2e} (exact)", self.nmse)
            }
            Metric::Mismatch => write!(
                f,
                "{verdict} {name:<48} differ {:>7.2e} (bound {:.0e})",
                self.nmse, self.bound
            ),
            Metric::Abs => write!(
                f,
                "{verdict} {name:<48} abs  {:>9.2e} (bound {:.0e})",
                self.nmse, self.bound
            ),
        }
    }
}

/// NMSE bounds by what limits the precision (see STYLE.md "Tests").
pub mod bound {
    /// f32 arithmetic, different summation order (relative error ~1e-6).
    pub const F32: f64 = 1e-10;
    /// f32 with transcendental functions whose GPU precision is looser
    /// (exp, tanh, sin/cos on lavapipe and SwiftShader).
    pub const F32_TRANSCENDENTAL: f64 = 1e-8;
    /// Activations stored as f16 (relative error ~1e-3).
    pub const F16: f64 = 3e-6;
}
