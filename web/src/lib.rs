//! framecast in the browser: a thin wasm-bindgen shell over the runtime,
//! run inside a Web Worker (`www/worker.js`): [`Session`] loads a model and
//! generates clips; the self-check functions below test the kernels.
//!
//! Every function opens the device itself (WebGPU through wgpu) and returns
//! plain JS objects built from the runtime's own types (see `report.rs`).
//! Runtime errors cross the boundary as `JsError` carrying the `GpuError`'s
//! message; nothing here knows about WGSL or kernels beyond their names.

mod console;
mod report;
mod session;

pub use session::Session;

use framecast::{AdapterChoice, Gpu, GpuError, doctor, kernels};
use wasm_bindgen::prelude::*;

use report::{FamilyResult, Probe, SelfCheck};

/// Installs the panic hook and the console logger when the module loads.
#[wasm_bindgen(start)]
pub fn start() {
    console::install();
}

/// The kernel families this build has (`framecast::kernels::FAMILIES`).
#[wasm_bindgen]
pub fn families() -> Vec<String> {
    kernels::FAMILIES.iter().map(|f| f.to_string()).collect()
}

/// Opens the adapter and describes it: name, backend, features, key limits
/// and the precision framecast would run at. Fails with the runtime's
/// message where there is no WebGPU.
#[wasm_bindgen]
pub async fn probe() -> Result<JsValue, JsError> {
    let gpu = open().await?;
    to_js(&Probe::of(&gpu))
}

/// Runs the self-check of each named family (all of [`families`] when
/// `families` is undefined) at f32, and at f16 where the adapter has
/// shader-f16. A family whose check fails to run is reported with its error
/// rather than thrown, so one broken family does not hide the others; an
/// unknown family name is a caller error and throws.
#[wasm_bindgen(js_name = selfCheck)]
pub async fn self_check(families: Option<Vec<String>>) -> Result<JsValue, JsError> {
    let names = match families {
        None => kernels::FAMILIES.to_vec(),
        Some(requested) => known(&requested)?,
    };
    let gpu = open().await?;
    let reports = doctor::check(&gpu, &names).await;
    let result = SelfCheck {
        adapter: Probe::of(&gpu),
        families: reports.iter().map(FamilyResult::of).collect(),
        passed: reports.iter().all(doctor::FamilyReport::passed),
    };
    to_js(&result)
}

async fn open() -> Result<Gpu, JsError> {
    Gpu::new(&AdapterChoice::default()).await.map_err(js_error)
}

/// The registry's names for `requested`, or an error naming the unknown ones.
fn known(requested: &[String]) -> Result<Vec<&'static str>, JsError> {
    let mut names = Vec::new();
    let mut unknown = Vec::new();
    for r in requested {
        match kernels::FAMILIES.iter().find(|f| **f == r.as_str()) {
            Some(f) => names.push(*f),
            None => unknown.push(r.as_str()),
        }
    }
    if unknown.is_empty() {
        Ok(names)
    } else {
        Err(js_error(GpuError::shape(
            "selfCheck",
            format!(
                "unknown kernel families {unknown:?}; this build has {:?}",
                kernels::FAMILIES
            ),
        )))
    }
}

fn js_error(e: GpuError) -> JsError {
    JsError::new(&e.to_string())
}

/// Serialises through JSON: the results are small, and it keeps the JS side
/// plain objects (no wasm-owned handles to free).
fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    let json = serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()))?;
    js_sys::JSON::parse(&json).map_err(|_| JsError::new("result is not valid JSON"))
}
