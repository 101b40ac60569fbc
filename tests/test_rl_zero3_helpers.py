"""The ZeRO-3 building blocks without DeepSpeed processes: chunked merged export equals the plain LoRA merge,
partitioned models refuse the non-collective read, micro-batch padding for ranks in lockstep."""

from __future__ import annotations

import pytest
import torch
from _engine_helpers import components
from peft.tuners.lora import LoraLayer

from irg_rl.distributed.weight_export import merged_state_dict
from irg_rl.distributed.zero3 import index_chunks, is_partitioned, max_across, padded_schedule
from irg_rl.rollout.weight_sync import changing_keys, export_weights
from irg_rl.train.freeze import apply_lora
from irg_rl.train.sections import LoraSection

torch.set_num_threads(1)


def _lora_model():
    model, _, _ = components(seed=4)
    lora = LoraSection(enabled=True, target_modules=r".*(q_proj|v_proj|o_proj)_moe_gen|llm2vae", r=4)
    model = apply_lora(model, lora)
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, LoraLayer):
            for a in m.active_adapters:  # non-zero deltas, so the merge is visible
                torch.nn.init.normal_(m.lora_B[a].weight, std=0.1)
    return model


def _expected(model) -> dict[str, torch.Tensor]:
    """The merge written out directly: W + scaling * B @ A for every LoRA layer, the rest as stored."""
    out = {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if ".lora_" not in k}
    for name, m in model.named_modules():
        if isinstance(m, LoraLayer):
            a = m.active_adapters[0]
            delta = (m.lora_B[a].weight @ m.lora_A[a].weight) * m.scaling[a]
            out[f"{name}.weight"] = out[f"{name}.weight"] + delta
    return out


def test_chunked_gather_export_equals_the_plain_merge():
    model = _lora_model()
    want = _expected(model)
    plain = merged_state_dict(model)
    chunked = merged_state_dict(model, gather=True, chunk_numel=500)  # many chunks
    assert list(plain) == list(chunked) == list(want)
    for k, v in want.items():
        assert torch.allclose(plain[k], v, atol=1e-6) and torch.equal(plain[k], chunked[k]), k
        assert chunked[k].device.type == "cpu" and chunked[k].data_ptr() != plain[k].data_ptr()
    assert any(not torch.equal(want[k], model.state_dict()[k.replace(".weight", ".base_layer.weight")])
               for k in changing_keys(model) if k.endswith(".weight"))  # fmt: skip
    # only the changing tensors, as the partial weight sync sends them
    keys = changing_keys(model)
    part = export_weights(model, keys)
    assert set(part) == keys and all(torch.equal(part[k], want[k]) for k in keys)
    # a rank that does not keep the copy returns nothing; an unknown name is an error
    assert export_weights(model, keep=False) == {}
    with pytest.raises(KeyError, match="no tensors"):
        merged_state_dict(model, ["not.a.tensor"])


def test_plain_model_state_dict_round_trips():
    model, _, _ = components(seed=5)
    sd = model.state_dict()
    out = merged_state_dict(model, gather=True, chunk_numel=1)  # one module per chunk
    assert list(out) == list(sd) and all(torch.equal(out[k], sd[k]) for k in sd)


def test_partitioned_parameters_need_the_collective_read():
    model, _, _ = components(seed=6)
    assert not is_partitioned(model)
    next(iter(model.parameters())).ds_id = 0  # how DeepSpeed ZeRO-3 tags a partitioned parameter
    assert is_partitioned(model)
    with pytest.raises(RuntimeError, match="gather=True on every rank"):
        merged_state_dict(model)


def test_padded_schedule_repeats_the_first_micro_batch_with_zero_weight():
    micro = [[0, 1, 2], [3, 4]]
    assert padded_schedule(micro, 2) == [([0, 1, 2], 1.0), ([3, 4], 1.0)]
    assert padded_schedule(micro, 4) == [([0, 1, 2], 1.0), ([3, 4], 1.0), ([0, 1, 2], 0.0), ([0, 1, 2], 0.0)]
    with pytest.raises(ValueError, match="target 1 < 2"):
        padded_schedule(micro, 1)
    with pytest.raises(ValueError, match="no micro-batch"):
        padded_schedule([], 1)
    assert padded_schedule([], 0) == []


def test_max_across_one_process_is_the_identity():
    class OneProcess:
        num_processes = 1

    assert max_across(OneProcess(), 7) == 7


def test_index_chunks_splits_in_order_with_a_shorter_last_chunk():
    assert index_chunks(5, 2) == [[0, 1], [2, 3], [4]]
    assert index_chunks(5, 0) == [[0, 1, 2, 3, 4]]  # 0 = everything in one pass
    assert index_chunks(3, 7) == [[0, 1, 2]]
    assert index_chunks(0, 0) == []
