import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irg_rl.data.format import DataFormatError, Turn, text_part, write_mode_shard
from irg_rl.data.modes import IMPROVING_FULL, INITIAL_FULL, INITIAL_THINKING_GENERATION
from irg_rl.train.sft.sampler import MixedSampler, ModeStream


def _conv(mode: str, i: int):
    return [Turn("user", f"{mode}:{i}"), Turn("assistant", [text_part(f"answer {i}")])]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("irgl")
    # 600 rows in two shards (row groups of 256) for one mode, 30 for the others
    write_mode_shard(root, INITIAL_FULL, [_conv(INITIAL_FULL, i) for i in range(300)], shard=0)
    write_mode_shard(root, INITIAL_FULL, [_conv(INITIAL_FULL, i) for i in range(300, 600)], shard=1)
    for mode in (IMPROVING_FULL, INITIAL_THINKING_GENERATION):
        write_mode_shard(root, mode, [_conv(mode, i) for i in range(30)])
    return root


def _key(sample):
    return sample.conversation[0].content


def test_stream_visits_every_row_once_per_epoch_across_ranks(root):
    seen = []
    for rank in range(3):
        s = ModeStream(root, INITIAL_FULL, rank=rank, world_size=3, seed=1)
        seen += [s.next()[3][0].content for _ in range(200)]
    assert sorted(seen) == sorted(f"{INITIAL_FULL}:{i}" for i in range(600))


def test_weights_and_mandatory_modes(root):
    w = {INITIAL_FULL: 1.0, IMPROVING_FULL: 1.0, INITIAL_THINKING_GENERATION: 0.5}
    s = MixedSampler(root, w, seed=0, mandatory_modes=[IMPROVING_FULL])
    counts = {m: 0 for m in w}
    for _ in range(2500):
        counts[s.next_sample().mode] += 1
    assert abs(counts[INITIAL_FULL] / 2500 - 0.4) < 0.04
    assert abs(counts[INITIAL_THINKING_GENERATION] / 2500 - 0.2) < 0.04
    opened = s.micro_batch_start()
    assert [x.mode for x in opened] == [IMPROVING_FULL]


def _draw(sampler, n):
    return [(x.mode, _key(x), x.uid) for x in (sampler.next_sample() for _ in range(n))]


def test_resume_same_world_size_is_exact(root):
    w = {INITIAL_FULL: 1.0, IMPROVING_FULL: 1.0}
    ref = [MixedSampler(root, w, rank=r, world_size=2, seed=3) for r in range(2)]
    full = [_draw(s, 40) for s in ref]
    a = [MixedSampler(root, w, rank=r, world_size=2, seed=3) for r in range(2)]
    head = [_draw(s, 15) for s in a]
    held = a[0].next_sample()
    a[0].hold(held)
    states = json.loads(json.dumps([s.state_dict() for s in a]))  # what goes through data_state.json
    b = [MixedSampler(root, w, rank=r, world_size=2, seed=3) for r in range(2)]
    for s in b:
        s.load_state_dict(states, step=5)
    tail = [_draw(s, 25) for s in b]
    assert head[0] + tail[0] == full[0] and head[1] + tail[1] == full[1]


def test_resume_on_other_world_size_skips_nothing(root):
    w = {INITIAL_FULL: 1.0}
    a = [MixedSampler(root, w, rank=r, world_size=2, seed=0) for r in range(2)]
    consumed = {_key(x) for s in a for x in (s.next_sample() for _ in range(10 + s.rank))}
    states = [s.state_dict() for s in a]
    b = [MixedSampler(root, w, rank=r, world_size=3, seed=0) for r in range(3)]
    for s in b:
        s.load_state_dict(states, step=1)
    after = {_key(x) for s in b for x in (s.next_sample() for _ in range(40))}
    first_120 = {f"{INITIAL_FULL}:{i}" for i in range(120)}
    # every one of the first 120 rows is read before or after the resume; at most one row is read twice
    assert first_120 <= consumed | after
    assert len(consumed & after) <= 1


def _bad_shard(root, mode):
    good = json.dumps(
        [
            {"role": "user", "content": "p"},
            {"role": "assistant", "content": [{"type": "text", "content": "t"}]},
        ]
    )
    bad = json.dumps(
        [
            {"role": "user", "content": "p"},
            {"role": "assistant", "content": [{"type": "txt", "content": "t"}]},
        ]
    )
    path = root / mode / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"conversation": [good, bad, good]}), path)
    return path


def test_malformed_row_raises_naming_file_row_field(tmp_path):
    path = _bad_shard(tmp_path, INITIAL_FULL)
    s = MixedSampler(tmp_path, {INITIAL_FULL: 1.0})
    s.next_sample()
    with pytest.raises(DataFormatError) as info:
        s.next_sample()
    msg = str(info.value)
    assert str(path) in msg and "row 1" in msg and "conversation[1].content[0].type" in msg


def test_malformed_row_skipped_and_counted(tmp_path):
    _bad_shard(tmp_path, INITIAL_FULL)
    s = MixedSampler(tmp_path, {INITIAL_FULL: 1.0}, on_error="skip")
    rows = [s.next_sample().row for _ in range(4)]
    assert rows == [0, 2, 0, 2]
    assert s.stats.skipped == 2 and "row 1" in s.stats.errors[0]


def test_missing_mode_folder_says_what_to_do(tmp_path):
    write_mode_shard(tmp_path, INITIAL_FULL, [_conv(INITIAL_FULL, 0)])
    with pytest.raises(FileNotFoundError, match="weight 0"):
        MixedSampler(tmp_path, {INITIAL_FULL: 1.0, IMPROVING_FULL: 1.0})


def test_extra_roots_add_their_files_to_a_mode(root, tmp_path):
    extra = tmp_path / "self_rows"
    write_mode_shard(extra, IMPROVING_FULL, [_conv("self", i) for i in range(10)])
    s = ModeStream([root, extra], IMPROVING_FULL, seed=0, shuffle_files=False)
    # root's 30 rows, then the extra root's 10, each exactly once per epoch
    seen = [s.next()[3][0].content for _ in range(40)]
    assert sorted(seen) == sorted(
        [f"{IMPROVING_FULL}:{i}" for i in range(30)] + [f"self:{i}" for i in range(10)]
    )
    # a mode only the main root has still reads from it alone
    assert len(ModeStream([root, extra], INITIAL_FULL).files) == 2


def test_missing_extra_root_is_named(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MixedSampler([root, tmp_path / "nowhere"], {INITIAL_FULL: 1.0})
