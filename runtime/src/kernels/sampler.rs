//! The flow-matching sampler: the Euler step with per-token sigmas and the
//! classifier-free guidance combine, as diffusers' `LTXConditionPipeline`
//! runs them with `FlowMatchEulerDiscreteScheduler`.
//!
//! **Sign convention.** The transformer predicts the velocity
//! `v ≈ noise - x0`, and a step from sigma to sigma' is
//! `x' = x + (sigma' - sigma) v`. diffusers' scheduler, given
//! `per_token_timesteps`, computes `x + (sigma - sigma') * model_output`,
//! which is why `LTXConditionPipeline` passes `-noise_pred`. [`ModelOutput`]
//! says which of the two the tensor holds, so neither caller negates.
//!
//! **Per-token sigmas.** Each token carries its own sigma: the step's sigma
//! `t`, or less for conditioning tokens (`min(t, 1 - conditioning_mask)`).
//! Its next sigma is the largest schedule sigma below its own (by more than
//! 1e-6), or 0. [`token_sigmas`] computes both on the CPU exactly as diffusers
//! does; the kernel reads them as two `[T]` f32 arrays.
//!
//! **Conditioning.** With [`Euler::keep_conditioned`] set to the step's sigma
//! `t`, a token whose sigma is not above `t - 1e-6` keeps its value bit for
//! bit (diffusers' `tokens_to_denoise_mask`).

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, Rng, bound};
use super::{check_numel, groups_1d, precision_of, round_to};
use crate::gpu::{Binding, DType, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

/// Mirrors `Params` in `shaders/sampler.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub channels: u32,
    pub cond_offset: u32,
    pub uncond_offset: u32,
    pub scale: f32,
    pub t_sigma: f32,
    pub keep_cond: u32,
    pub rescale: f32,
}

/// What the model-output tensor of an Euler step holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelOutput {
    /// The transformer's prediction `v ≈ noise - x0`: `x' = x + (sigma' - sigma) v`.
    Velocity,
    /// `-v`, the `model_output` diffusers' per-token step takes
    /// (`LTXConditionPipeline` passes `-noise_pred`): `x' = x + (sigma - sigma') m`.
    NegatedVelocity,
}

impl ModelOutput {
    fn sign(self) -> f32 {
        match self {
            ModelOutput::Velocity => 1.0,
            ModelOutput::NegatedVelocity => -1.0,
        }
    }
}

/// Options of one Euler step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Euler {
    pub output: ModelOutput,
    /// `Some(t)`: the step's sigma; tokens whose sigma is `<= t - 1e-6`
    /// (conditioning tokens not yet due) keep their values. `None` updates all.
    pub keep_conditioned: Option<f32>,
}

/// diffusers' margin in `lower_mask` and `tokens_to_denoise_mask`.
const SIGMA_EPS: f32 = 1e-6;

/// diffusers' `tokens_to_denoise_mask` for a token at `sigma` in the step at
/// `t`; false for NaN, like the kernel's comparison.
fn denoised(t: f32, sigma: f32) -> bool {
    t - SIGMA_EPS < sigma
}

const WG: u32 = 256;

/// One Euler step over latents `[T, C]`: `sigma` and `sigma_next` are F32
/// `[T]`. Writes `out` (same shape as `latents`), or updates `latents` in
/// place when `out` is `None`.
pub fn encode_step(
    step: &mut Step,
    latents: &Tensor,
    model_output: &Tensor,
    sigma: &Tensor,
    sigma_next: &Tensor,
    out: Option<&Tensor>,
    euler: Euler,
) -> Result<(), GpuError> {
    let name = "sampler.euler_step";
    let mut acts = vec![latents, model_output];
    acts.extend(out);
    let precision = precision_of(name, &acts)?;
    for (t, what) in [(sigma, "sigma"), (sigma_next, "sigma_next")] {
        if t.dtype != DType::F32 {
            return Err(GpuError::shape(name, format!("{what} must be F32")));
        }
    }
    let tokens = sigma.numel();
    let n = latents.numel();
    if tokens == 0 || !n.is_multiple_of(tokens) {
        return Err(GpuError::shape(
            name,
            format!(
                "latents {:?} are not whole tokens of sigma {:?}",
                latents.shape, sigma.shape
            ),
        ));
    }
    check_numel(name, sigma_next, tokens, "sigma_next")?;
    check_numel(name, model_output, n, "model_output")?;
    if out.is_none() && latents.buffer() == model_output.buffer() {
        return Err(GpuError::shape(
            name,
            "in place, model_output cannot be latents",
        ));
    }
    if let Some(o) = out {
        check_numel(name, o, n, "out")?;
        if [latents, model_output]
            .iter()
            .any(|t| t.buffer() == o.buffer())
        {
            return Err(GpuError::shape(
                name,
                "out shares a buffer with an input; pass None to update in place",
            ));
        }
    }
    let params = Params {
        n: n as u32,
        channels: (n / tokens) as u32,
        cond_offset: 0,
        uncond_offset: 0,
        scale: euler.output.sign(),
        t_sigma: euler.keep_conditioned.unwrap_or(0.0),
        keep_cond: euler.keep_conditioned.is_some() as u32,
        rescale: 0.0,
    };
    let key = PipelineKey::new(Kernel::Sampler, "euler_step")
        .flags(precision.flags())
        .flag_if(out.is_none(), "INPLACE");
    let mut bindings = vec![
        match out {
            Some(_) => Binding::read(latents),
            None => Binding::write(latents),
        },
        Binding::read(model_output),
        Binding::read(sigma),
        Binding::read(sigma_next),
    ];
    bindings.extend(out.map(Binding::write));
    step.dispatch(&key, &params, &bindings, groups_1d(n as u32, WG))
}

/// Each token's sigma and next sigma for the step at schedule sigma `t`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSigmas {
    pub sigma: Vec<f32>,
    pub next: Vec<f32>,
}

/// Per-token sigmas as `LTXConditionPipeline` and the scheduler form them:
/// `sigma = min(t, 1 - conditioning_mask)` (just `t` without a mask) and
/// `next` = the largest of `schedule` below `sigma - 1e-6`, or 0. `schedule`
/// is the scheduler's `sigmas` (its trailing 0 may be left out).
pub fn token_sigmas(
    schedule: &[f32],
    t: f32,
    conditioning_mask: Option<&[f32]>,
    tokens: usize,
) -> TokenSigmas {
    let sigma: Vec<f32> = match conditioning_mask {
        Some(mask) => mask.iter().map(|&m| t.min(1.0 - m)).collect(),
        None => vec![t; tokens],
    };
    let next = sigma
        .iter()
        .map(|&s| {
            schedule
                .iter()
                .copied()
                .filter(|&c| c < s - SIGMA_EPS)
                .fold(0.0f32, f32::max)
        })
        .collect();
    TokenSigmas { sigma, next }
}

/// The Euler step on the CPU, in the kernel's f32 arithmetic.
pub fn reference_step(
    latents: &[f32],
    model_output: &[f32],
    sigma: &[f32],
    sigma_next: &[f32],
    euler: Euler,
) -> Vec<f32> {
    let channels = latents.len() / sigma.len().max(1);
    let sign = euler.output.sign();
    latents
        .iter()
        .zip(model_output)
        .enumerate()
        .map(|(i, (&x, &m))| {
            let tok = i / channels;
            let s = sigma[tok];
            match euler.keep_conditioned {
                Some(t) if !denoised(t, s) => x,
                _ => x + (sigma_next[tok] - s) * (sign * m),
            }
        })
        .collect()
}

/// One operand of the guidance combine: elements `offset ..` of `tensor`,
/// as many as the output has.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub tensor: &'a Tensor,
    pub offset: usize,
}

impl<'a> Operand<'a> {
    pub fn whole(tensor: &'a Tensor) -> Operand<'a> {
        Operand { tensor, offset: 0 }
    }

    /// Item `index` of a tensor batched as `[items, ...]` (diffusers batches
    /// CFG as `[uncond, cond]`: uncond is item 0, cond item 1).
    pub fn item(tensor: &'a Tensor, index: usize, items: usize) -> Result<Operand<'a>, GpuError> {
        let n = tensor.numel();
        if items == 0 || index >= items || !n.is_multiple_of(items) {
            return Err(GpuError::shape(
                "sampler.cfg",
                format!("item {index} of {items} in {:?}", tensor.shape),
            ));
        }
        Ok(Operand {
            tensor,
            offset: index * (n / items),
        })
    }
}

/// diffusers' `guidance_rescale` (`rescale_noise_cfg`): mixes the guided
/// prediction with a copy scaled to cond's standard deviation by `phi`.
#[derive(Clone, Copy, Debug)]
pub struct Rescale<'a> {
    pub phi: f32,
    /// F32, at least 4 elements: receives the factor, the std ratio and the means.
    pub scratch: &'a Tensor,
}

/// `out = uncond + guidance * (cond - uncond)`, then the rescale if given.
pub fn encode_cfg(
    step: &mut Step,
    cond: Operand,
    uncond: Operand,
    out: &Tensor,
    guidance: f32,
    rescale: Option<Rescale>,
) -> Result<(), GpuError> {
    let name = "sampler.cfg";
    let precision = precision_of(name, &[cond.tensor, uncond.tensor, out])?;
    let n = out.numel();
    for (op, what) in [(&cond, "cond"), (&uncond, "uncond")] {
        if op.offset + n > op.tensor.numel() {
            return Err(GpuError::shape(
                name,
                format!(
                    "{what} needs elements {}..{} of {:?}",
                    op.offset,
                    op.offset + n,
                    op.tensor.shape
                ),
            ));
        }
    }
    if [cond.tensor, uncond.tensor]
        .iter()
        .any(|t| t.buffer() == out.buffer())
    {
        return Err(GpuError::shape(
            name,
            "out shares a buffer with cond or uncond",
        ));
    }
    let params = Params {
        n: n as u32,
        channels: 1,
        cond_offset: cond.offset as u32,
        uncond_offset: uncond.offset as u32,
        scale: guidance,
        t_sigma: 0.0,
        keep_cond: 0,
        rescale: rescale.map_or(0.0, |r| r.phi),
    };
    let flags = precision.flags();
    let (c, u) = (Binding::read(cond.tensor), Binding::read(uncond.tensor));
    let groups = groups_1d(n as u32, WG);
    let Some(r) = rescale else {
        let key = PipelineKey::new(Kernel::Sampler, "cfg_combine").flags(flags);
        return step.dispatch(&key, &params, &[c, u, Binding::write(out)], groups);
    };
    if r.scratch.dtype != DType::F32 || r.scratch.numel() < 4 {
        return Err(GpuError::shape(
            name,
            format!(
                "rescale scratch must be F32 with >= 4 elements, not {:?}",
                r.scratch
            ),
        ));
    }
    let stats = PipelineKey::new(Kernel::Sampler, "cfg_stats").flags(flags);
    step.dispatch(
        &stats,
        &params,
        &[c, u, Binding::write(r.scratch)],
        [1, 1, 1],
    )?;
    let apply = PipelineKey::new(Kernel::Sampler, "cfg_rescale").flags(flags);
    step.dispatch(
        &apply,
        &params,
        &[c, u, Binding::write(out), Binding::read(r.scratch)],
        groups,
    )
}

/// The guidance combine on the CPU (statistics in f64, as a reference).
pub fn reference_cfg(
    cond: &[f32],
    uncond: &[f32],
    guidance: f32,
    rescale: Option<f32>,
) -> Vec<f32> {
    let guided: Vec<f32> = cond
        .iter()
        .zip(uncond)
        .map(|(&c, &u)| u + guidance * (c - u))
        .collect();
    let Some(phi) = rescale else { return guided };
    let std = |v: &[f32]| {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    let (sc, sg) = (std(cond), std(&guided));
    let ratio = if sg > 0.0 { sc / sg } else { 1.0 };
    let factor = (phi as f64 * ratio + (1.0 - phi as f64)) as f32;
    guided.iter().map(|&g| g * factor).collect()
}

/// A descending schedule ending in 0, like the scheduler's `sigmas`.
fn test_schedule(rng: &mut Rng, steps: usize) -> Vec<f32> {
    let mut s: Vec<f32> = (0..steps).map(|_| 0.5 + 0.5 * rng.uniform()).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s[0] = 1.0;
    s.push(0.0);
    s
}

async fn check_step(
    gpu: &Gpu,
    precision: Precision,
    rng: &mut Rng,
    (tokens, channels): (usize, usize),
    euler: Euler,
    in_place: bool,
    checks: &mut Vec<Check>,
) -> Result<(), GpuError> {
    let n = tokens * channels;
    let dtype = precision.dtype();
    let schedule = test_schedule(rng, 8);
    let t = euler.keep_conditioned.unwrap_or(schedule[3]);
    // Hard (1), partial and free (0) conditioning tokens.
    let mask: Vec<f32> = (0..tokens)
        .map(|i| match i % 4 {
            0 => 1.0,
            1 => 0.5 + 0.5 * rng.uniform(),
            _ => 0.0,
        })
        .collect();
    let ts = token_sigmas(&schedule, t, Some(&mask), tokens);
    let x = round_to(&rng.normal_vec(n, 1.0), precision);
    let m = round_to(&rng.normal_vec(n, 1.0), precision);
    let tx = gpu.upload(&x, &[tokens, channels], dtype)?;
    let tm = gpu.upload(&m, &[tokens, channels], dtype)?;
    let ts_gpu = gpu.upload(&ts.sigma, &[tokens], DType::F32)?;
    let tn_gpu = gpu.upload(&ts.next, &[tokens], DType::F32)?;
    let out = gpu.empty(&[tokens, channels], dtype)?;
    let mut step = gpu.step("sampler check");
    let target = if in_place { None } else { Some(&out) };
    encode_step(&mut step, &tx, &tm, &ts_gpu, &tn_gpu, target, euler)?;
    step.submit()?;
    let got = gpu.read(if in_place { &tx } else { &out }).await?;
    let want = round_to(
        &reference_step(&x, &m, &ts.sigma, &ts.next, euler),
        precision,
    );
    let label = format!(
        "euler T={tokens} C={channels} {:?}{}{} {precision:?}",
        euler.output,
        if euler.keep_conditioned.is_some() {
            " keep"
        } else {
            ""
        },
        if in_place { " in-place" } else { "" },
    );
    let bound = match precision {
        Precision::F32 => bound::F32,
        Precision::F16 => bound::F16,
    };
    checks.push(Check::new(&label, &got, &want, bound));
    if let Some(t) = euler.keep_conditioned {
        // Kept tokens must come back bit for bit.
        let kept = |v: &[f32]| -> Vec<u32> {
            v.iter()
                .enumerate()
                .filter(|(i, _)| !denoised(t, ts.sigma[i / channels]))
                .map(|(_, x)| x.to_bits())
                .collect()
        };
        checks.push(Check::exact(
            format!("{label} kept"),
            &kept(&got),
            &kept(&x),
        ));
    }
    Ok(())
}

async fn check_cfg(
    gpu: &Gpu,
    precision: Precision,
    rng: &mut Rng,
    (tokens, channels): (usize, usize),
    batched: bool,
    rescale: Option<f32>,
    checks: &mut Vec<Check>,
) -> Result<(), GpuError> {
    let n = tokens * channels;
    let dtype = precision.dtype();
    // Guidance widens the spread, which is what the rescale undoes.
    let cond = round_to(&rng.normal_vec(n, 1.0), precision);
    let uncond = round_to(&rng.normal_vec(n, 0.8), precision);
    let guidance = 3.0;
    let out = gpu.empty(&[tokens, channels], dtype)?;
    let scratch = gpu.empty(&[4], DType::F32)?;
    let r = rescale.map(|phi| Rescale {
        phi,
        scratch: &scratch,
    });
    let mut step = gpu.step("cfg check");
    // Keep the uploads alive until the step has run.
    let _inputs = if batched {
        let both = gpu.upload(
            &[uncond.clone(), cond.clone()].concat(),
            &[2, tokens, channels],
            dtype,
        )?;
        let (c, u) = (Operand::item(&both, 1, 2)?, Operand::item(&both, 0, 2)?);
        encode_cfg(&mut step, c, u, &out, guidance, r)?;
        vec![both]
    } else {
        let tc = gpu.upload(&cond, &[tokens, channels], dtype)?;
        let tu = gpu.upload(&uncond, &[tokens, channels], dtype)?;
        encode_cfg(
            &mut step,
            Operand::whole(&tc),
            Operand::whole(&tu),
            &out,
            guidance,
            r,
        )?;
        vec![tc, tu]
    };
    step.submit()?;
    let got = gpu.read(&out).await?;
    let want = round_to(&reference_cfg(&cond, &uncond, guidance, rescale), precision);
    let bound = match precision {
        Precision::F32 => bound::F32,
        Precision::F16 => bound::F16,
    };
    checks.push(Check::new(
        format!(
            "cfg T={tokens} C={channels}{}{} {precision:?}",
            if batched { " batched" } else { "" },
            rescale.map_or(String::new(), |p| format!(" rescale={p}")),
        ),
        &got,
        &want,
        bound,
    ));
    Ok(())
}

/// The Euler step (both sign conventions, conditioning kept or not, in
/// place or not) and the CFG combine (two tensors or a batched one, with and
/// without rescale) at awkward sizes against the references.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let mut rng = Rng::new(11);
    let mut checks = Vec::new();
    let (v, neg) = (ModelOutput::Velocity, ModelOutput::NegatedVelocity);
    let euler = |output, keep_conditioned| Euler {
        output,
        keep_conditioned,
    };
    let steps = [
        ((1, 1), euler(v, None), false),
        ((1, 129), euler(neg, None), true),
        ((37, 131), euler(v, Some(0.7)), false),
        ((37, 131), euler(neg, Some(0.7)), true),
        ((300, 128), euler(neg, Some(0.95)), false),
        ((1, 7), euler(v, Some(0.3)), true),
    ];
    for (size, euler, in_place) in steps {
        check_step(gpu, precision, &mut rng, size, euler, in_place, &mut checks).await?;
    }
    let cfgs: &[((usize, usize), bool, Option<f32>)] = &[
        ((1, 1), false, None),
        ((7, 13), true, None),
        ((61, 129), false, Some(0.7)),
        ((61, 129), true, Some(0.0)),
        ((300, 128), true, Some(1.0)),
    ];
    for &(size, batched, rescale) in cfgs {
        check_cfg(
            gpu,
            precision,
            &mut rng,
            size,
            batched,
            rescale,
            &mut checks,
        )
        .await?;
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_sigma_is_the_largest_schedule_sigma_below_the_token() {
        let schedule = [1.0, 0.9, 0.6, 0.3, 0.0];
        // Token 0 free, token 1 hard-conditioned, token 2 partly (0.4 -> 0.6 < 1 - 0.4).
        let ts = token_sigmas(&schedule, 0.9, Some(&[0.0, 1.0, 0.4]), 3);
        assert_eq!(ts.sigma, vec![0.9, 0.0, 0.6]);
        assert_eq!(ts.next, vec![0.6, 0.0, 0.3]);
        // Without the trailing zero the answer is the same.
        let ts = token_sigmas(&schedule[..4], 0.3, None, 2);
        assert_eq!(ts.next, vec![0.0, 0.0]);
    }

    #[test]
    fn both_sign_conventions_take_the_same_step() {
        let (x, v) = ([0.5f32, -1.0], [2.0f32, 0.25]);
        let (s, sn) = ([0.8f32], [0.6f32]);
        let keep = None;
        let a = reference_step(
            &x,
            &v,
            &s,
            &sn,
            Euler {
                output: ModelOutput::Velocity,
                keep_conditioned: keep,
            },
        );
        let neg: Vec<f32> = v.iter().map(|m| -m).collect();
        let b = reference_step(
            &x,
            &neg,
            &s,
            &sn,
            Euler {
                output: ModelOutput::NegatedVelocity,
                keep_conditioned: keep,
            },
        );
        assert_eq!(a, b);
        // Towards the data: x' = x - 0.2 v.
        assert!((a[0] - (0.5 - 0.2 * 2.0)).abs() < 1e-6);
    }

    #[test]
    fn rescale_matches_the_cond_spread_at_phi_one() {
        let cond = [1.0f32, -1.0, 2.0, 0.0];
        let uncond = [0.0f32; 4];
        let out = reference_cfg(&cond, &uncond, 4.0, Some(1.0));
        for (o, c) in out.iter().zip(cond) {
            assert!((o - c).abs() < 1e-6);
        }
    }
}
