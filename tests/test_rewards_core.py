"""Reward contract, registry (built-ins, run-time, entry points, paths) and the composite's NaN/z-score rules."""

import importlib.metadata
import math
import pickle

import pytest
import torch
from PIL import Image

from rewards import (
    CompositeReward,
    RegistryError,
    Reward,
    RewardBatch,
    RewardOutput,
    RewardSpec,
    build_reward,
    registry,
)
from rewards.composite import nan_zscore, weighted_nan_sum


def _batch(n=4, **kw):
    return RewardBatch(
        prompts=[f"p{i}" for i in range(n)], images=[Image.new("RGB", (8, 8)) for _ in range(n)], **kw
    )


class Const(Reward):
    """Returns fixed scores (tests)."""

    name = "const"

    def __init__(self, values=(1.0,), loads=None):
        super().__init__()
        self.values = list(values)

    def load(self):
        return {"weights": torch.ones(3)}

    def score(self, batch):
        assert self.model is not None
        v = (self.values * len(batch))[: len(batch)]
        return RewardOutput(scores=torch.tensor(v), details=[{"v": x} for x in v])


def make_const(values=(2.0,)):
    return Const(values)


def test_batch_validates_lengths_and_types():
    with pytest.raises(ValueError, match="think_2 has 1 entries but there are 2 prompts"):
        _batch(2, think_2=["x"])
    with pytest.raises(TypeError, match=r"images\[0\]"):
        RewardBatch(prompts=["a"], images=["not an image"])
    b = _batch(3)
    assert b.metadata == [{}, {}, {}]
    assert b.select([2, 0]).prompts == ["p2", "p0"]
    assert len(RewardBatch.concat([b, b])) == 6


def test_output_shape_checks():
    with pytest.raises(ValueError, match="2 scores but 1 detail"):
        RewardOutput(scores=torch.zeros(2), details=[{}])
    with pytest.raises(ValueError, match="1-D"):
        RewardOutput(scores=torch.zeros(2, 1), details=[{}, {}])


def test_lazy_load_and_pickle_drops_model():
    r = Const([1.0])
    assert r._model is None  # nothing loaded in __init__
    r(_batch(2))
    assert r._loaded and r._model is not None
    clone = pickle.loads(pickle.dumps(r))
    assert clone._model is None and not clone._loaded
    assert clone(_batch(2)).scores.tolist() == [1.0, 1.0]


def test_builtin_lookup_and_unknown_name():
    r = build_reward({"name": "reflection_format", "args": {"min_chars": 5}})
    assert r.name == "reflection_format" and r.min_chars == 5
    with pytest.raises(RegistryError, match="unknown reward 'reflection_formt'.*reflection_format"):
        build_reward("reflection_formt")
    with pytest.raises(TypeError, match="reward 'reflection_format': bad arguments"):
        build_reward({"name": "reflection_format", "args": {"nope": 1}})
    with pytest.raises(ValueError, match="unknown key"):
        RewardSpec.coerce({"name": "shapes", "wieght": 2})


def test_path_factory_and_runtime_registration():
    r = build_reward({"name": "tests.test_rewards_core:make_const"})
    assert r(_batch(1)).scores.tolist() == [2.0]
    registry.register_reward("const_test", Const)
    try:
        assert isinstance(build_reward("const_test"), Const)
        with pytest.raises(RegistryError, match="already registered"):
            registry.register_reward("const_test", Const)
        with pytest.raises(RegistryError, match="already registered"):
            registry.register_reward("shapes", Const)
    finally:
        registry.unregister_reward("const_test")


def _fake_eps(monkeypatch, *eps):
    real = importlib.metadata.entry_points

    def fake(**kw):
        if kw.get("group") == registry.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(eps)
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)


def test_entry_point_plugin_is_discovered(monkeypatch):
    ep = importlib.metadata.EntryPoint(
        "my_plugin", "tests.test_rewards_core:make_const", registry.ENTRY_POINT_GROUP
    )
    _fake_eps(monkeypatch, ep)
    assert "my_plugin" in registry.available_rewards()
    assert registry.available_rewards()["my_plugin"] == "(no description)"
    assert build_reward("my_plugin")(_batch(1)).scores.tolist() == [2.0]


def test_entry_point_duplicates_are_errors(monkeypatch):
    ep = importlib.metadata.EntryPoint(
        "shapes", "tests.test_rewards_core:make_const", registry.ENTRY_POINT_GROUP
    )
    _fake_eps(monkeypatch, ep)
    with pytest.raises(RegistryError, match="'shapes' is defined twice"):
        build_reward("reflection_format")
    a = importlib.metadata.EntryPoint("dup", "a.b:c", registry.ENTRY_POINT_GROUP)
    b = importlib.metadata.EntryPoint("dup", "x.y:z", registry.ENTRY_POINT_GROUP)
    _fake_eps(monkeypatch, a, b)
    with pytest.raises(RegistryError, match="registered twice"):
        registry.available_rewards()


def test_nan_zscore_known_values():
    z = nan_zscore(torch.tensor([1.0, math.nan, 3.0]))
    assert torch.allclose(z[[0, 2]], torch.tensor([-1.0, 1.0]), atol=1e-4) and math.isnan(z[1])
    assert nan_zscore(torch.tensor([5.0, 5.0])).tolist() == [0.0, 0.0]
    assert torch.isnan(nan_zscore(torch.tensor([math.nan, math.nan]))).all()


def test_weighted_nan_sum_rules():
    v = torch.tensor([[1.0, math.nan, math.nan], [2.0, 4.0, math.nan]])
    w = torch.tensor([1.0, 0.5])
    out = weighted_nan_sum(v, w)
    assert out[0] == 2.0 and out[1] == 2.0 and math.isnan(out[2])
    ren = weighted_nan_sum(v, w, renormalize=True)
    assert ren[0] == pytest.approx(2.0) and ren[1] == pytest.approx(2.0 * 1.5 / 0.5)


def test_composite_reports_components_and_propagates_nan():
    a = Const([1.0, 2.0, math.nan, math.nan])
    b = Const([10.0, math.nan, 30.0, math.nan])
    comp = CompositeReward(components=[("a", a, 2.0), ("b", b, 0.1)])
    out = comp(_batch(4))
    assert out.scores[:3].tolist() == pytest.approx([3.0, 4.0, 3.0])
    assert math.isnan(out.scores[3])
    assert set(out.components) == {"a", "b"}
    assert out.details[1]["components"] == {"a": 2.0, "b": None}
    assert out.details[0]["a"] == {"v": 1.0}


def test_composite_zscore_before_weighting():
    a = Const([1.0, 2.0, 3.0])
    b = Const([100.0, 100.0, 100.0])
    out = CompositeReward(components=[("a", a, 1.0), ("b", b, 5.0)], zscore=True)(_batch(3))
    expected = nan_zscore(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(out.scores, expected)
    assert out.details[0]["zscored"]["b"] == 0.0


def test_composite_from_specs_and_duplicate_labels():
    comp = CompositeReward(
        specs=[{"name": "tests.test_rewards_core:make_const", "weight": 3.0, "alias": "c"}]
    )
    assert comp(_batch(2)).scores.tolist() == [6.0, 6.0]
    with pytest.raises(ValueError, match="duplicate labels"):
        CompositeReward(specs=["reflection_format", "reflection_format"])
    with pytest.raises(ValueError, match="serve='http' needs 'url'"):
        CompositeReward(specs=[{"name": "shapes", "serve": "http"}])


def test_reward_specs_load_from_a_typed_recipe():
    from dataclasses import dataclass, field

    from irg_rl.config import ConfigError, config_from_dict

    @dataclass
    class Recipe:
        # rewards of the run
        rewards: list[RewardSpec] = field(default_factory=list)
        # z-score each reward before weighting
        zscore: bool = False

    data = {
        "rewards": [{"name": "reflection_format", "weight": 2.0, "args": {"min_chars": 5}}],
        "zscore": True,
    }
    cfg = config_from_dict(Recipe, data)
    comp = CompositeReward(cfg.rewards, zscore=cfg.zscore)
    assert comp.components[0][0] == "reflection_format" and comp.components[0][2] == 2.0
    with pytest.raises(ConfigError):
        config_from_dict(Recipe, {"rewards": [{"name": "x", "wieght": 1.0}]})


def test_output_select_picks_scores_details_and_components_in_order():
    out = RewardOutput(
        scores=torch.tensor([0.0, 1.0, 2.0]),
        details=[{"i": 0}, {"i": 1}, {"i": 2}],
        components={"a": torch.tensor([5.0, 6.0, 7.0])},
    )
    got = out.select([2, 0])
    assert got.scores.tolist() == [2.0, 0.0] and got.details == [{"i": 2}, {"i": 0}]
    assert got.components["a"].tolist() == [7.0, 5.0]
