"""Every committed recipe loads with its schema and passes validation (a typo in a key or value fails here)."""

from pathlib import Path

import pytest

from irg_rl.config import load_config
from irg_rl.eval.eval_config import EvalRecipe
from irg_rl.train.rl.recipe import DPORecipe, GRPORecipe, NFTRecipe
from irg_rl.train.sft.config import SFTRecipe

RECIPES = Path(__file__).parent.parent / "recipes"
SCHEMAS = {
    "sft_stage1": SFTRecipe,
    "sft_stage2": SFTRecipe,
    "sft_stage2_self": SFTRecipe,
    "grpo": GRPORecipe,
    "dpo": DPORecipe,
    "nft": NFTRecipe,
    "eval": EvalRecipe,
}
FILES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "accelerate")
# values a recipe leaves required (`???`) because only the user knows them
_BAGEL7B = ["model.source=/ckpt/bagel-irg-sft", "prompts.source=/data/geneval_prompts.jsonl"]
REQUIRED = {"bagel7b/grpo": _BAGEL7B, "bagel7b/dpo": _BAGEL7B, "bagel7b/nft": _BAGEL7B}


def test_every_recipe_has_a_schema():
    assert FILES and all(p.stem in SCHEMAS for p in FILES), [p for p in FILES if p.stem not in SCHEMAS]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_loads_and_validates(path):
    # load_config runs the schema's validate(), which raises ConfigError naming the bad field
    load_config(SCHEMAS[path.stem], str(path), REQUIRED.get(f"{path.parent.name}/{path.stem}", []))


def test_shapes_grpo_recipe_keeps_its_credit_settings():
    r = load_config(GRPORecipe, str(RECIPES / "shapes" / "grpo.yaml"))
    assert (
        r.sampling.group_initial_noise
        and r.sampling.sde_window_max_start == 4
        and r.optim.lr == pytest.approx(1e-4)
    )


def test_bad_prompt_balance_names_the_key():
    from irg_rl.config import ConfigError

    with pytest.raises(ConfigError, match="prompts.balance must be one of"):
        load_config(GRPORecipe, str(RECIPES / "shapes" / "grpo.yaml"), ["prompts.balance=tags"])
