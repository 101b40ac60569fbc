"""Does the suite catch a broken maths module? Applies one hand-picked mutation at a time (a flipped sign, a dropped
term, a changed constant) to the RL maths, runs that module's tests, and reports caught / missed.

    python -m experiments.mutation_check [--list] [--only NAME ...]

Each mutation runs in a scratch copy of the working tree's packages and tests (removed afterwards), so the
checkout is never modified, even when interrupted. Exit status 1 when a
mutation survives. Results: docs/architecture.md ("Tests that can fail").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    # short name
    name: str
    # file relative to the repo root
    path: str
    # exact text to replace (must occur once)
    old: str
    # its replacement
    new: str
    # the tests that should catch it
    tests: tuple[str, ...]


ADV = (
    "tests/test_rl_math_advantages.py",
    "tests/test_rl_math_verdict_credit.py",
    "tests/test_rl_credit_registry.py",
)
POLICY = ("tests/test_rl_math_policy_loss.py", "tests/test_rl_math_grpo_guard.py")
MUTATIONS = (
    Mutation(
        "advantage sign",
        "irg_rl/train/rl/advantages.py",
        "adv = (r - mean[inv])",
        "adv = (mean[inv] - r)",
        ADV,
    ),
    Mutation(
        "advantage std dropped", "irg_rl/train/rl/advantages.py", "/ (std[inv] + eps)", "/ (1.0 + eps)", ADV
    ),
    Mutation(
        "zero-std groups kept",
        "irg_rl/train/rl/advantages.py",
        "valid = ~zero[inv]",
        "valid = ~zero[inv] | True",
        ADV,
    ),  # fmt: skip
    Mutation(
        "verdict credit off the think_2 tokens",
        "irg_rl/train/rl/credit.py",
        '{**weights, "verdict": cfg.verdict}',
        '{**weights, "verdict": 0.0}',
        ADV,
    ),  # fmt: skip
    Mutation(
        "stopped samples stay in the image_2 baseline",
        "irg_rl/train/rl/credit.py",
        "ids_img[stop] = int(",
        "ids_img[stop[:0]] = int(",
        ADV,
    ),  # fmt: skip
    Mutation(
        "PPO max -> min",
        "irg_rl/train/rl/policy_loss.py",
        "loss = torch.maximum(-ratio * adv, -clipped * adv)",
        "loss = torch.minimum(-ratio * adv, -clipped * adv)",
        POLICY,
    ),  # fmt: skip
    Mutation(
        "ratio without old log-probs",
        "irg_rl/train/rl/policy_loss.py",
        "torch.exp(logp.float() - old_logp.detach().float() if",
        "torch.exp(logp.float() if",
        POLICY,
    ),  # fmt: skip
    Mutation(
        "k3 KL sign",
        "irg_rl/train/rl/policy_loss.py",
        "return torch.exp(-d) + d - 1.0",
        "return torch.exp(-d) - d - 1.0",
        POLICY,
    ),  # fmt: skip
    Mutation(
        "DPO logits sign",
        "irg_rl/train/rl/dpo_loss.py",
        "logits = beta * (chosen - rejected)",
        "logits = beta * (rejected - chosen)",
        ("tests/test_rl_math_dpo.py",),
    ),  # fmt: skip
    Mutation(
        "DPO label smoothing term dropped",
        "irg_rl/train/rl/dpo_loss.py",
        "- label_smoothing * F.logsigmoid(-logits)",
        "- 0.0 * F.logsigmoid(-logits)",
        ("tests/test_rl_math_dpo.py",),
    ),  # fmt: skip
    Mutation(
        "NFT r offset",
        "irg_rl/train/rl/nft_loss.py",
        "return 0.5 + advantages",
        "return 0.4 + advantages",
        ("tests/test_rl_math_nft.py",),
    ),  # fmt: skip
    Mutation(
        "NFT negative policy sign",
        "irg_rl/train/rl/nft_loss.py",
        "v_old - beta * (v - v_old)",
        "v_old + beta * (v - v_old)",
        ("tests/test_rl_math_nft.py",),
    ),  # fmt: skip
    Mutation(
        "SDE std without sqrt(dt)",
        "irg_rl/inference/sde.py",
        "return mean, std_t * torch.sqrt(dt)",
        "return mean, std_t * dt",
        ("tests/test_rl_math_sde.py",),
    ),  # fmt: skip
    Mutation(
        "SDE drift correction dropped",
        "irg_rl/inference/sde.py",
        "mean = xf - (vf + coef * (xf + (1.0 - tb) * vf)) * dt",
        "mean = xf - vf * dt",
        ("tests/test_rl_math_sde.py",),
    ),  # fmt: skip
)


def _run(mutation: Mutation, scratch: Path) -> tuple[bool, float, str]:
    """(caught, seconds, last output line) for one mutation applied in `scratch`."""
    target = scratch / mutation.path
    original = target.read_text()
    if mutation.old and original.count(mutation.old) != 1:
        raise SystemExit(
            f"{mutation.name}: '{mutation.old}' occurs {original.count(mutation.old)} times in {target}"
        )
    target.write_text(original.replace(mutation.old, mutation.new))
    env = {**os.environ, "PYTHONPATH": str(scratch), "WANDB_MODE": "disabled"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutation.tests],
            cwd=scratch, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        target.write_text(original)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode != 0, time.perf_counter() - t0, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m experiments.mutation_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument(
        "--only", nargs="*", default=None, help="run only mutations whose name contains one of these"
    )
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(o in m.name for o in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:48s} {m.path}")
        return
    scratch = Path(tempfile.mkdtemp(prefix="irg_mutation_"))
    try:
        for sub in ("irg_rl", "rewards", "tests", "experiments"):
            shutil.copytree(ROOT / sub, scratch / sub, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", scratch / "pyproject.toml")
        # control: the unmutated copy must pass the same tests, or a "caught" would mean nothing
        tests = tuple(sorted({t for m in chosen for t in m.tests}))
        control = Mutation("control (no mutation)", chosen[0].path, "", "", tests)
        failed, secs, last = _run(control, scratch)
        if failed:
            raise SystemExit(
                f"the unmutated copy fails its tests ({last}); fix them before checking mutations"
            )
        print(f"control: {len(tests)} test files pass unmutated ({secs:.0f} s)", flush=True)
        rows, survived = [], 0
        for m in chosen:
            caught, secs, last = _run(m, scratch)
            survived += not caught
            rows.append(
                f"| {m.name} | `{m.path}` | {'caught' if caught else '**survived**'} | {secs:.0f} s |"
            )
            print(rows[-1], f"({last})", flush=True)
        print(f"\n{len(chosen) - survived} of {len(chosen)} mutations caught")
        print("\n| mutation | module | result | time |\n|---|---|---|---|\n" + "\n".join(rows))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raise SystemExit(1 if survived else 0)


if __name__ == "__main__":
    main()
