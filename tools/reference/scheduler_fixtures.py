"""Records diffusers' flow-matching schedules as JSON for the Rust scheduler tests.

Run with the reference environment (see tools/README.md):
    python tools/reference/scheduler_fixtures.py tests/fixtures/scheduler.json
"""

import json
import sys

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.ltx.pipeline_ltx_condition import calculate_shift, linear_quadratic_schedule

CONFIGS = {
    "default": {},
    # LTX-Video 0.9.5+ style: explicit terminal sigma.
    "terminal": {"shift_terminal": 0.1},
    "shifted": {"shift": 3.0},
    "dynamic": {"use_dynamic_shifting": True, "base_shift": 0.95, "max_shift": 2.05,
                "base_image_seq_len": 1024, "max_image_seq_len": 4096},
    "dynamic_linear": {"use_dynamic_shifting": True, "time_shift_type": "linear"},
}


def case(name, config, steps=None, timesteps=None, sigmas=None, seq_len=None):
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    mu = None
    if config.get("use_dynamic_shifting"):
        c = scheduler.config
        mu = calculate_shift(seq_len, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)
    scheduler.set_timesteps(steps, timesteps=timesteps, sigmas=sigmas, mu=mu)
    # Per-token sigmas exactly as step(per_token_timesteps=...) derives them.
    probes = [1000.0, 999.0, 700.0, 333.0, 25.0, float(scheduler.timesteps[-1])]
    per_token = []
    for t in probes:
        own = torch.tensor([[t]]) / scheduler.config.num_train_timesteps
        s = scheduler.sigmas[:, None, None]
        lower = ((s < own[None] - 1e-6) * s).max(dim=0).values
        per_token.append([t, float(own), float(lower)])
    return {
        "name": name, "config": config, "steps": steps, "timesteps_in": timesteps, "sigmas_in": sigmas,
        "seq_len": seq_len, "mu": mu,
        "timesteps": scheduler.timesteps.tolist(), "sigmas": scheduler.sigmas.tolist(),
        "per_token": per_token,
    }


def main(out):
    ltx_default = (linear_quadratic_schedule(8) * 1000).tolist()
    cases = [
        case("default_8", CONFIGS["default"], steps=8),
        case("shifted_5", CONFIGS["shifted"], steps=5),
        case("terminal_ltx_default_8", CONFIGS["terminal"], timesteps=ltx_default),
        case("terminal_explicit", CONFIGS["terminal"], timesteps=[1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 421.9]),
        case("default_explicit_sigmas", CONFIGS["default"], sigmas=[1.0, 0.75, 0.5, 0.25]),
        case("dynamic_20", CONFIGS["dynamic"], steps=20, seq_len=1120),
        case("dynamic_linear_4", CONFIGS["dynamic_linear"], steps=4, seq_len=300),
    ]
    lq = {str(n): linear_quadratic_schedule(n).tolist() for n in (1, 2, 3, 8, 20, 50)}
    with open(out, "w") as f:
        json.dump({"cases": cases, "linear_quadratic": lq}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
