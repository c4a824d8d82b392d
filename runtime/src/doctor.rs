//! `framecast doctor`: what this GPU offers and whether every kernel family
//! computes what its CPU reference computes.

use std::fmt::Write;

use crate::gpu::{Gpu, Precision};
use crate::kernels::{self, testing::Check};

pub struct FamilyReport {
    pub family: &'static str,
    pub precision: Precision,
    pub result: Result<Vec<Check>, crate::GpuError>,
}

impl FamilyReport {
    pub fn passed(&self) -> bool {
        self.result
            .as_ref()
            .is_ok_and(|c| c.iter().all(Check::passed))
    }
}

pub struct Report {
    pub adapter: String,
    pub families: Vec<FamilyReport>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.families.iter().all(FamilyReport::passed)
    }
}

/// The adapter's description: name, backend, driver, features, limits, path.
pub fn describe(gpu: &Gpu) -> String {
    let (i, c, l) = (&gpu.info, &gpu.caps, &gpu.limits);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "adapter      {} ({:?}, {:?})",
        i.name, i.device_type, i.backend
    );
    let _ = writeln!(s, "driver       {} {}", i.driver, i.driver_info);
    let yes = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(s, "shader-f16   {}", yes(c.f16));
    let _ = writeln!(
        s,
        "subgroups    {} (size {}..{})",
        yes(c.subgroups),
        c.subgroup_size.0,
        c.subgroup_size.1
    );
    let _ = writeln!(s, "timestamps   {}", yes(c.timestamps));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let _ = writeln!(
        s,
        "max buffer   {:.0} MiB, storage binding {:.0} MiB",
        mib(l.max_buffer_size),
        mib(l.max_storage_buffer_binding_size as u64)
    );
    let _ = writeln!(
        s,
        "workgroups   {} invocations, {} KiB shared memory, {} storage buffers per stage",
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroup_storage_size / 1024,
        l.max_storage_buffers_per_shader_stage
    );
    let path = match gpu.preferred_precision() {
        Precision::F16 => "f16 activations, f32 accumulation",
        Precision::F32 => "f32 (no shader-f16 on this adapter)",
    };
    let _ = writeln!(s, "compute path {path}");
    s
}

/// The precisions a self-check covers on this adapter: f32 always, f16
/// where the device has shader-f16.
pub fn precisions(gpu: &Gpu) -> Vec<Precision> {
    let mut precisions = vec![Precision::F32];
    if gpu.caps.f16 {
        precisions.push(Precision::F16);
    }
    precisions
}

/// Runs the named families' self-checks at every precision of [`precisions`]
/// (names from [`kernels::FAMILIES`]; another name reports as that family's error).
pub async fn check(gpu: &Gpu, names: &[&'static str]) -> Vec<FamilyReport> {
    let mut families = Vec::new();
    for &family in names {
        for precision in precisions(gpu) {
            let result = kernels::self_check(gpu, family, precision).await;
            families.push(FamilyReport {
                family,
                precision,
                result,
            });
        }
    }
    families
}

/// Runs every family's self-check at f32, and at f16 where the adapter has it.
pub async fn run(gpu: &Gpu) -> Report {
    Report {
        adapter: describe(gpu),
        families: check(gpu, kernels::FAMILIES).await,
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.adapter)?;
        writeln!(f, "\nkernel self-check against the CPU references:")?;
        for fam in &self.families {
            match &fam.result {
                Ok(checks) => {
                    let worst = checks
                        .iter()
                        // Exact checks have a zero bound: count them as 0% or failed.
                        .map(|c| match (c.bound > 0.0, c.passed()) {
                            (true, _) => c.nmse / c.bound,
                            (false, true) => 0.0,
                            (false, false) => f64::INFINITY,
                        })
                        .fold(0.0f64, f64::max);
                    let verdict = if fam.passed() { "ok  " } else { "FAIL" };
                    writeln!(
                        f,
                        "  {verdict} {:<12} {:?}  {} cases, worst error at {:.1}% of its bound",
                        fam.family,
                        fam.precision,
                        checks.len(),
                        worst * 100.0
                    )?;
                    for c in checks.iter().filter(|c| !c.passed()) {
                        writeln!(f, "       {c}")?;
                    }
                }
                Err(e) => writeln!(f, "  FAIL {:<12} {:?}  {e}", fam.family, fam.precision)?,
            }
        }
        let verdict = if self.passed() {
            "framecast can run on this adapter."
        } else {
            "some kernels disagree with their references on this adapter: please report it with this output."
        };
        writeln!(f, "\n{verdict}")
    }
}
