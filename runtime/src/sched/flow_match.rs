//! Flow-matching Euler schedules, as diffusers' `FlowMatchEulerDiscreteScheduler`
//! (0.42) computes them, and the timestep lists `LTXConditionPipeline` feeds it.
//!
//! Sigmas run from ~1 (pure noise) to 0; the model predicts a velocity `v`
//! and one Euler step is `x += (sigma_next - sigma) * v`. Timesteps are on the
//! 0..1000 training scale. When explicit timesteps are given, diffusers keeps
//! them as given but still shifts the sigmas derived from them; per-token
//! steps then take a token's own sigma from its timestep and its next sigma
//! from the (shifted) schedule: [`Schedule::token_sigmas`].

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum SchedulerError {
    #[error(
        "the scheduler needs `mu` (resolution-dependent shift) because use_dynamic_shifting is on"
    )]
    MissingMu,
    #[error("a schedule needs at least one step")]
    NoSteps,
    #[error("{0} sigmas are not supported (LTX-Video does not use them)")]
    Unsupported(&'static str),
    #[error("timesteps must lie in (0, {max}]: got {value}")]
    BadTimestep { value: f32, max: f32 },
    #[error("shift_terminal must be below 1, got {0}")]
    BadTerminal(f32),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeShift {
    #[default]
    Exponential,
    Linear,
}

/// The fields of diffusers' scheduler_config.json that change the schedule.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct FlowMatchConfig {
    pub num_train_timesteps: u32,
    pub shift: f64,
    pub use_dynamic_shifting: bool,
    pub base_shift: f64,
    pub max_shift: f64,
    pub base_image_seq_len: u32,
    pub max_image_seq_len: u32,
    pub invert_sigmas: bool,
    pub shift_terminal: Option<f64>,
    pub use_karras_sigmas: bool,
    pub use_exponential_sigmas: bool,
    pub use_beta_sigmas: bool,
    pub time_shift_type: TimeShift,
    pub stochastic_sampling: bool,
}

impl Default for FlowMatchConfig {
    /// diffusers' constructor defaults.
    fn default() -> Self {
        FlowMatchConfig {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: 0.5,
            max_shift: 1.15,
            base_image_seq_len: 256,
            max_image_seq_len: 4096,
            invert_sigmas: false,
            shift_terminal: None,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            time_shift_type: TimeShift::Exponential,
            stochastic_sampling: false,
        }
    }
}

/// The timesteps of a run and its sigmas (one more, ending at 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub timesteps: Vec<f32>,
    pub sigmas: Vec<f32>,
    pub num_train_timesteps: u32,
}

impl FlowMatchConfig {
    /// `mu` for resolution-dependent shifting (diffusers' `calculate_shift`).
    pub fn mu_for(&self, image_seq_len: usize) -> f64 {
        let m = (self.max_shift - self.base_shift)
            / (self.max_image_seq_len as f64 - self.base_image_seq_len as f64);
        let b = self.base_shift - m * self.base_image_seq_len as f64;
        image_seq_len as f64 * m + b
    }

    fn shifted(&self, sigmas: Vec<f64>, mu: Option<f64>) -> Result<Vec<f64>, SchedulerError> {
        let mut s: Vec<f64> = if self.use_dynamic_shifting {
            let mu = mu.ok_or(SchedulerError::MissingMu)?;
            let e = match self.time_shift_type {
                TimeShift::Exponential => mu.exp(),
                TimeShift::Linear => mu,
            };
            sigmas.iter().map(|&t| e / (e + (1.0 / t - 1.0))).collect()
        } else {
            sigmas
                .iter()
                .map(|&t| self.shift * t / (1.0 + (self.shift - 1.0) * t))
                .collect()
        };
        if let Some(terminal) = self.shift_terminal.filter(|&t| t != 0.0) {
            if terminal >= 1.0 {
                return Err(SchedulerError::BadTerminal(terminal as f32));
            }
            let last = 1.0 - s[s.len() - 1];
            let scale = last / (1.0 - terminal);
            s = s.iter().map(|&t| 1.0 - (1.0 - t) / scale).collect();
        }
        Ok(s)
    }

    /// diffusers' `set_timesteps(num_inference_steps, sigmas, mu, timesteps)`.
    pub fn schedule(
        &self,
        num_inference_steps: Option<usize>,
        sigmas: Option<&[f32]>,
        timesteps: Option<&[f32]>,
        mu: Option<f64>,
    ) -> Result<Schedule, SchedulerError> {
        if self.use_karras_sigmas || self.use_exponential_sigmas || self.use_beta_sigmas {
            return Err(SchedulerError::Unsupported("karras/exponential/beta"));
        }
        let train = self.num_train_timesteps as f64;
        if let Some(ts) = timesteps {
            if let Some(&bad) = ts.iter().find(|&&t| !(t > 0.0 && t as f64 <= train)) {
                return Err(SchedulerError::BadTimestep {
                    value: bad,
                    max: train as f32,
                });
            }
        }
        let base: Vec<f64> = match (sigmas, timesteps) {
            (Some(s), _) => s.iter().map(|&v| v as f64).collect(),
            (None, Some(t)) => t.iter().map(|&v| v as f64 / train).collect(),
            (None, None) => {
                let n = num_inference_steps.ok_or(SchedulerError::NoSteps)?;
                // The constructor's sigma range: 1 and 1/train, shifted unless dynamic.
                let ends = if self.use_dynamic_shifting {
                    vec![1.0, 1.0 / train]
                } else {
                    self.shifted(vec![1.0, 1.0 / train], None)?
                };
                let (hi, lo) = (ends[0] * train, ends[1] * train);
                linspace(hi, lo, n).into_iter().map(|t| t / train).collect()
            }
        };
        if base.is_empty() {
            return Err(SchedulerError::NoSteps);
        }
        let shifted = self.shifted(base, mu)?;
        let mut sigmas: Vec<f32> = shifted.iter().map(|&s| s as f32).collect();
        let mut ts: Vec<f32> = match timesteps {
            Some(t) => t.to_vec(),
            None => sigmas.iter().map(|&s| s * train as f32).collect(),
        };
        if self.invert_sigmas {
            sigmas = sigmas.iter().map(|&s| 1.0 - s).collect();
            ts = sigmas.iter().map(|&s| s * train as f32).collect();
            sigmas.push(1.0);
        } else {
            sigmas.push(0.0);
        }
        Ok(Schedule {
            timesteps: ts,
            sigmas,
            num_train_timesteps: self.num_train_timesteps,
        })
    }
}

impl Schedule {
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }

    /// Sigma now and next for a step that applies to every token alike.
    pub fn step_sigmas(&self, step: usize) -> (f32, f32) {
        (self.sigmas[step], self.sigmas[step + 1])
    }

    /// For a token at timestep `t` (0..1000 scale): its own sigma `t/1000`, and
    /// the largest schedule sigma strictly below it (0 if none), as diffusers'
    /// `step(per_token_timesteps=...)` computes them.
    pub fn token_sigmas(&self, t: f32) -> (f32, f32) {
        let own = t / self.num_train_timesteps as f32;
        let next = self
            .sigmas
            .iter()
            .copied()
            .filter(|&s| s < own - 1e-6)
            .fold(0.0f32, f32::max);
        (own, next)
    }

    /// Keeps the last `strength` fraction of the steps (SDEdit-style
    /// video-to-video), as `LTXConditionPipeline.get_timesteps` does.
    /// `strength` is f64 as Python's float: `int(steps * strength)` in f32
    /// would make 10 x 0.7 six steps instead of seven.
    pub fn truncated(&self, strength: f64) -> Schedule {
        let n = self.len();
        let keep = ((n as f64 * strength) as usize).min(n);
        let start = n - keep;
        Schedule {
            timesteps: self.timesteps[start..].to_vec(),
            sigmas: self.sigmas[start..].to_vec(),
            num_train_timesteps: self.num_train_timesteps,
        }
    }
}

/// numpy's `linspace(start, stop, n)` in f64.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    if i == n - 1 {
                        stop
                    } else {
                        start + step * i as f64
                    }
                })
                .collect()
        }
    }
}

/// `LTXConditionPipeline`'s default sigmas when no timesteps are given:
/// linear for the first half of the steps down to `threshold_noise`, then
/// quadratic (diffusers' `linear_quadratic_schedule`, f64 as in Python).
pub fn linear_quadratic_schedule(
    num_steps: usize,
    threshold_noise: f64,
    linear_steps: Option<usize>,
) -> Vec<f32> {
    if num_steps < 2 {
        return vec![1.0];
    }
    let linear = linear_steps.unwrap_or(num_steps / 2);
    let mut schedule: Vec<f64> = (0..linear)
        .map(|i| i as f64 * threshold_noise / linear as f64)
        .collect();
    let diff = linear as f64 - threshold_noise * num_steps as f64;
    let quad_steps = (num_steps - linear) as f64;
    let quad_coef = diff / (linear as f64 * quad_steps * quad_steps);
    let lin_coef = threshold_noise / linear as f64 - 2.0 * diff / (quad_steps * quad_steps);
    let constant = quad_coef * (linear as f64).powi(2);
    schedule.extend(
        (linear..num_steps)
            .map(|i| quad_coef * (i as f64).powi(2) + lin_coef * i as f64 + constant),
    );
    schedule.into_iter().map(|x| (1.0 - x) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_endpoints() {
        assert_eq!(linspace(1000.0, 1.0, 3), vec![1000.0, 500.5, 1.0]);
        assert_eq!(linspace(5.0, 1.0, 1), vec![5.0]);
    }

    #[test]
    fn per_token_next_sigma_is_the_largest_lower_one() {
        let s = Schedule {
            timesteps: vec![1000.0, 500.0],
            sigmas: vec![1.0, 0.5, 0.0],
            num_train_timesteps: 1000,
        };
        assert_eq!(s.token_sigmas(1000.0), (1.0, 0.5));
        assert_eq!(s.token_sigmas(500.0), (0.5, 0.0));
        assert_eq!(s.token_sigmas(700.0), (0.7, 0.5));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dynamic = FlowMatchConfig {
            use_dynamic_shifting: true,
            ..Default::default()
        };
        assert_eq!(
            dynamic.schedule(Some(4), None, None, None),
            Err(SchedulerError::MissingMu)
        );
        let c = FlowMatchConfig::default();
        assert!(c.schedule(None, None, Some(&[1200.0]), None).is_err());
        assert!(c.schedule(None, None, None, None).is_err());
    }
}
