//! The plain objects `probe()` and `selfCheck()` hand to JavaScript, built
//! from the runtime's `Gpu` and `doctor` types (field names in camelCase).

use framecast::Gpu;
use framecast::doctor::{self, FamilyReport};
use framecast::gpu::Precision;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// On WebGPU, the adapter's `GPUAdapterInfo.description` (may be empty).
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub features: Features,
    pub limits: Limits,
    pub preferred_precision: &'static str,
    /// `framecast doctor`'s text for the same adapter.
    pub summary: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub f16: bool,
    pub subgroups: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub timestamps: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

impl Probe {
    pub fn of(gpu: &Gpu) -> Probe {
        let (i, c, l) = (&gpu.info, &gpu.caps, &gpu.limits);
        Probe {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            features: Features {
                f16: c.f16,
                subgroups: c.subgroups,
                subgroup_min_size: c.subgroup_size.0,
                subgroup_max_size: c.subgroup_size.1,
                timestamps: c.timestamps,
            },
            limits: Limits {
                max_buffer_size: l.max_buffer_size,
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            },
            preferred_precision: precision_name(gpu.preferred_precision()),
            summary: doctor::describe(gpu),
        }
    }
}

#[derive(Serialize)]
pub struct SelfCheck {
    pub adapter: Probe,
    pub families: Vec<FamilyResult>,
    /// Every case of every family within its bound, and no family errored.
    pub passed: bool,
}

#[derive(Serialize)]
pub struct FamilyResult {
    pub family: &'static str,
    pub precision: &'static str,
    pub passed: bool,
    /// The `GpuError` message when the family could not run at all.
    pub error: Option<String>,
    pub cases: Vec<Case>,
}

#[derive(Serialize)]
pub struct Case {
    pub name: String,
    /// `null` in JSON when infinite (NaN output or a length mismatch).
    pub nmse: f64,
    pub bound: f64,
    pub passed: bool,
}

impl FamilyResult {
    pub fn of(r: &FamilyReport) -> FamilyResult {
        let (error, cases) = match &r.result {
            Ok(checks) => (
                None,
                checks
                    .iter()
                    .map(|c| Case {
                        name: c.name.clone(),
                        nmse: c.nmse,
                        bound: c.bound,
                        passed: c.passed(),
                    })
                    .collect(),
            ),
            Err(e) => (Some(e.to_string()), Vec::new()),
        };
        FamilyResult {
            family: r.family,
            precision: precision_name(r.precision),
            passed: r.passed(),
            error,
            cases,
        }
    }
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::F16 => "f16",
    }
}
