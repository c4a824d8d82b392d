//! Every kernel family, in every variant the runtime may request, must parse
//! and validate with naga: no GPU needed.

use framecast_shaders::{Kernel, wgsl};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validate(kernel: Kernel, flags: &[&str]) -> Result<(), String> {
    let source = wgsl(kernel, flags).map_err(|e| e.to_string())?;
    let module = naga::front::wgsl::parse_str(&source).map_err(|e| e.emit_to_string(&source))?;
    // unpack2x16float (f16 weights and scales in u32 words) is core WGSL on
    // WebGPU; wgpu withholds it only on GL ES and on lavapipe without
    // shader-f16 (DownlevelFlags::SHADER_F16_IN_F32).
    let mut caps = Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if flags.contains(&"F16") {
        caps |= Capabilities::SHADER_FLOAT16;
    }
    if flags.contains(&"SUBGROUPS") {
        caps |= Capabilities::SUBGROUP;
    }
    Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .map(|_| ())
        .map_err(|e| e.emit_to_string(&source))
}

#[test]
fn every_shader_variant_validates() {
    let mut failures = Vec::new();
    let mut count = 0;
    for &kernel in Kernel::ALL {
        for &flags in kernel.variants() {
            count += 1;
            if let Err(e) = validate(kernel, flags) {
                failures.push(format!("{} {flags:?}:\n{e}", kernel.name()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} variants failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{count} shader variants validated");
}

#[test]
fn a_broken_shader_is_caught() {
    // The check above must be able to fail: an f16 variant without the capability does.
    let source = wgsl(Kernel::Elementwise, &["F16"]).unwrap();
    let module = naga::front::wgsl::parse_str(&source).unwrap();
    assert!(
        Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&module)
            .is_err()
    );
}

#[test]
fn every_family_is_registered_once_with_a_file() {
    let mut names: Vec<_> = Kernel::ALL.iter().map(|k| k.name()).collect();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
    for k in Kernel::ALL {
        assert!(
            k.source().contains("@compute"),
            "{} has no entry point",
            k.name()
        );
    }
}

/// naga rounds a decimal literal beyond f32::MAX down to it; Chromium's Tint
/// rejects the shader. Catch such literals here, without a browser.
#[test]
fn no_f32_literal_beyond_f32_max() {
    let mut bad = Vec::new();
    let sources = Kernel::ALL.iter().map(|k| (k.name(), k.source()));
    for (name, src) in sources {
        for token in
            src.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '+' || c == '-'))
        {
            let digits = token.trim_start_matches(['-', '+']).trim_end_matches('f');
            if digits.contains(['e', 'E']) && digits.starts_with(|c: char| c.is_ascii_digit()) {
                if let Ok(v) = digits.parse::<f64>() {
                    if v > f32::MAX as f64 {
                        bad.push(format!("{name}: {token}"));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "literals Tint will reject: {bad:?}");
}
