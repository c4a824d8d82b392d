//! The GPU context itself: buffer reuse, step recording, errors.

use framecast::gpu::{DType, GpuError};
use framecast::kernels::elementwise::{self, Op};
use framecast::{AdapterChoice, Gpu};

fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::new(&AdapterChoice::from_env())) {
        Ok(g) => Some(g),
        Err(e) => {
            assert!(
                std::env::var("FRAMECAST_REQUIRE_GPU").as_deref() != Ok("1"),
                "no adapter: {e}"
            );
            eprintln!("skipped: no GPU adapter ({e})");
            None
        }
    }
}

#[test]
fn inputs_dropped_before_submit_are_not_recycled_under_the_step() {
    let Some(gpu) = gpu() else { return };
    let n = 4096;
    let out = gpu.empty(&[n], DType::F32).unwrap();
    let mut step = gpu.step("hazard");
    {
        let a = gpu.upload(&vec![1.0; n], &[n], DType::F32).unwrap();
        let b = gpu.upload(&vec![2.0; n], &[n], DType::F32).unwrap();
        elementwise::encode(&mut step, Op::Add, &a, Some(&b), &out).unwrap();
    }
    // Same size class as a and b: without the step holding them, these uploads
    // would land in their buffers before the add runs.
    let _c = gpu.upload(&vec![100.0; n], &[n], DType::F32).unwrap();
    let _d = gpu.upload(&vec![100.0; n], &[n], DType::F32).unwrap();
    step.submit().unwrap();
    let got = pollster::block_on(gpu.read(&out)).unwrap();
    assert!(
        got.iter().all(|&v| v == 3.0),
        "first values {:?}",
        &got[..4]
    );
}

#[test]
fn buffers_are_reused_and_memory_is_accounted() {
    let Some(gpu) = gpu() else { return };
    let before = gpu.memory();
    let t = gpu.empty(&[1000], DType::F32).unwrap();
    let live = gpu.memory().live;
    assert!(live >= before.live + 4000);
    drop(t);
    let after = gpu.memory();
    assert_eq!(after.live, before.live);
    assert!(after.cached >= 4000 && after.peak >= live);
    let again = gpu.empty(&[990], DType::F32).unwrap();
    assert_eq!(
        gpu.memory().cached,
        after.cached - (live - before.live),
        "the free buffer was reused"
    );
    drop(again);
}

#[test]
fn shape_errors_are_typed_and_record_nothing() {
    let Some(gpu) = gpu() else { return };
    let a = gpu.empty(&[10], DType::F32).unwrap();
    let b = gpu.empty(&[3], DType::F32).unwrap();
    let out = gpu.empty(&[10], DType::F32).unwrap();
    let mut step = gpu.step("errors");
    let e = elementwise::encode(&mut step, Op::Add, &a, Some(&b), &out).unwrap_err();
    assert!(matches!(e, GpuError::Shape { .. }), "{e}");
    assert!(step.is_empty());
    assert!(a.reshape(&[3, 3]).is_err());
}

#[test]
fn a_buffer_over_the_binding_limit_is_refused_with_the_limit() {
    let Some(gpu) = gpu() else { return };
    let limit = gpu.limits.max_storage_buffer_binding_size as u64;
    let too_big = (limit / 4 + 1) as usize;
    match gpu.empty(&[too_big], DType::F32) {
        Err(GpuError::TooLarge {
            bytes, limit: l, ..
        }) => assert!(bytes > l),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Profiled steps submitted the ordinary way keep their timestamps until
/// asked: one entry per step, one time per dispatch, in order, and the
/// results are the same as unprofiled.
#[test]
fn kernel_times_of_profiled_steps_are_collected_afterwards() {
    let Some(gpu) = gpu() else { return };
    if !gpu.caps.timestamps {
        eprintln!("skipped: the adapter has no timestamp queries");
        return;
    }
    let n = 1 << 16;
    let a = gpu.upload(&vec![1.5; n], &[n], DType::F32).unwrap();
    let b = gpu.upload(&vec![2.0; n], &[n], DType::F32).unwrap();
    let (s, out) = (
        gpu.empty(&[n], DType::F32).unwrap(),
        gpu.empty(&[n], DType::F32).unwrap(),
    );
    gpu.set_profiling(true);
    for label in ["first", "second"] {
        let mut step = gpu.step(label);
        elementwise::encode(&mut step, Op::Add, &a, Some(&b), &s).unwrap();
        elementwise::encode(&mut step, Op::Mul, &s, Some(&b), &out).unwrap();
        step.submit().unwrap();
    }
    gpu.set_profiling(false);
    let mut plain = gpu.step("plain");
    elementwise::encode(&mut plain, Op::Add, &a, Some(&b), &s).unwrap();
    plain.submit().unwrap();
    let times = pollster::block_on(gpu.take_kernel_times()).unwrap();
    let steps: Vec<&str> = times.iter().map(|t| &*t.step).collect();
    assert_eq!(
        steps,
        ["first", "second"],
        "the unprofiled step is not listed"
    );
    for t in &times {
        assert_eq!(t.kernels.len(), 2, "{t:?}");
        assert!(
            t.kernels
                .iter()
                .all(|k| k.nanos.is_finite() && k.nanos >= 0.0),
            "{t:?}"
        );
    }
    assert!(
        pollster::block_on(gpu.take_kernel_times())
            .unwrap()
            .is_empty(),
        "taken once"
    );
    let got = pollster::block_on(gpu.read(&out)).unwrap();
    assert!(
        got.iter().all(|&v| v == 7.0),
        "first values {:?}",
        &got[..4]
    );
}
