//! The flow-matching schedules against values recorded from diffusers
//! (tests/fixtures/scheduler.json, made by tools/reference/scheduler_fixtures.py).

use framecast::sched::{FlowMatchConfig, linear_quadratic_schedule};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/scheduler.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .unwrap_or_default()
}

fn assert_close(name: &str, what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{name} {what}: lengths {got:?} vs {want:?}"
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{name} {what}[{i}]: {g} vs diffusers {w}"
        );
    }
}

#[test]
fn schedules_match_diffusers() {
    let f = fixture();
    let cases = f["cases"].as_array().unwrap();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let config: FlowMatchConfig = serde_json::from_value(c["config"].clone()).unwrap();
        let steps = c["steps"].as_u64().map(|n| n as usize);
        let ts_in = floats(&c["timesteps_in"]);
        let sig_in = floats(&c["sigmas_in"]);
        let mu = c["seq_len"].as_u64().map(|n| config.mu_for(n as usize));
        if let Some(want) = c["mu"].as_f64() {
            assert!(
                (mu.unwrap() - want).abs() < 1e-9,
                "{name}: mu {mu:?} vs {want}"
            );
        }
        let s = config
            .schedule(
                steps,
                (!sig_in.is_empty()).then_some(&sig_in[..]),
                (!ts_in.is_empty()).then_some(&ts_in[..]),
                mu,
            )
            .unwrap();
        // diffusers computes partly in f32 (numpy/torch), we in f64: agree to f32 rounding.
        assert_close(
            name,
            "timesteps",
            &s.timesteps,
            &floats(&c["timesteps"]),
            2e-6,
        );
        assert_close(name, "sigmas", &s.sigmas, &floats(&c["sigmas"]), 2e-6);
        for probe in c["per_token"].as_array().unwrap() {
            let p = floats(probe);
            let (own, next) = s.token_sigmas(p[0]);
            assert_close(
                name,
                &format!("token sigmas at t={}", p[0]),
                &[own, next],
                &p[1..],
                2e-6,
            );
        }
        println!("{name}: {} steps match", s.len());
    }
    assert!(cases.len() >= 5);
}

#[test]
fn ltx_default_schedule_matches_diffusers() {
    let f = fixture();
    for (n, want) in f["linear_quadratic"].as_object().unwrap() {
        let got = linear_quadratic_schedule(n.parse().unwrap(), 0.025, None);
        assert_close("linear_quadratic", n, &got, &floats(want), 1e-6);
    }
}
