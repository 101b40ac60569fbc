import base64
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irg_rl.data.format import (
    DataFormatError,
    ReadStats,
    Turn,
    image_part,
    iter_conversations,
    iter_file,
    parse_conversation,
    text_part,
    validate_dataset,
    write_mode_shard,
)
from irg_rl.data.modes import IMPROVING_FULL, INITIAL_FULL


def _conv(seed: int):
    rng = np.random.default_rng(seed)
    img1 = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return [
        Turn("user", f"a photo of {seed} red circles"),
        Turn(
            "assistant",
            [
                text_part("<think> plan </think>"),
                image_part(img1, need_loss=True, need_vae=True, need_vit=True),
                text_part("<think> reflect </think>"),
                image_part(img2, need_loss=True),
            ],
        ),
    ]


def test_round_trip_is_bit_exact(tmp_path):
    convs = [_conv(i) for i in range(5)]
    write_mode_shard(tmp_path, IMPROVING_FULL, convs)
    back = [c for _, _, _, c in iter_conversations(tmp_path)]
    assert back == convs
    img = back[0][1].content[1].pil()
    assert np.array_equal(np.asarray(img), np.asarray(convs[0][1].content[1].pil()))


def test_flag_defaults_follow_the_release():
    data = json.dumps(
        [
            {"role": "user", "content": "p"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "content": "t"},
                    {
                        "type": "image",
                        "content": base64.b64encode(
                            image_part(np.zeros((2, 2, 3), np.uint8)).content
                        ).decode(),
                    },
                ],
            },
        ]
    )
    conv = parse_conversation(data)
    text, image = conv[1].content
    assert (text.need_loss, text.need_vae, text.need_vit) == (True, False, False)
    assert (image.need_loss, image.need_vae, image.need_vit) == (False, False, False)


def _write_raw(path, cells):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"conversation": pa.array(cells, pa.string())}), path)


GOOD = json.dumps(
    [{"role": "user", "content": "p"}, {"role": "assistant", "content": [{"type": "text", "content": "t"}]}]
)


@pytest.mark.parametrize(
    "cell, field",
    [
        ("{not json", "conversation"),
        (
            json.dumps(
                [
                    {"role": "user", "content": "p"},
                    {"role": "assistant", "content": [{"type": "video", "content": "x"}]},
                ]
            ),
            "conversation[1].content[0].type",
        ),
        (
            json.dumps(
                [
                    {"role": "user", "content": "p"},
                    {"role": "assistant", "content": [{"type": "image", "content": "!!notbase64!!"}]},
                ]
            ),
            "conversation[1].content[0].content",
        ),
        (
            json.dumps(
                [
                    {"role": "user", "content": "p"},
                    {
                        "role": "assistant",
                        "content": [{"type": "image", "content": base64.b64encode(b"not an image").decode()}],
                    },
                ]
            ),
            "conversation[1].content[0].content",
        ),
        (json.dumps([{"role": "user"}]), "conversation[0].content"),
        (
            json.dumps(
                [{"role": "user", "content": "p"}, {"role": "assistant", "content": [{"type": "text"}]}]
            ),
            "conversation[1].content[0].content",
        ),
        (json.dumps([{"role": "bot", "content": "p"}]), "conversation[0].role"),
        (
            json.dumps(
                [
                    {"role": "user", "content": "p"},
                    {"role": "assistant", "content": [{"type": "text", "content": "t", "need_loss": "yes"}]},
                ]
            ),
            "conversation[1].content[0].need_loss",
        ),
    ],
)
def test_malformed_rows_name_file_row_and_field(tmp_path, cell, field):
    path = tmp_path / INITIAL_FULL / "part-00000.parquet"
    _write_raw(path, [GOOD, GOOD, cell, GOOD])
    with pytest.raises(DataFormatError) as info:
        list(iter_file(path))
    err = info.value
    assert (err.file, err.row, err.field_path) == (str(path), 2, field)
    assert str(path) in str(err) and "row 2" in str(err) and field in str(err)
    stats = ReadStats()
    rows = [r for r, _ in iter_file(path, on_error="skip", stats=stats)]
    assert rows == [0, 1, 3] and stats.skipped == 1 and stats.rows == 3
    assert validate_dataset(tmp_path)[INITIAL_FULL].skipped == 1


def test_missing_column_and_resume_position(tmp_path):
    path = tmp_path / INITIAL_FULL / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["x"]}), path)
    with pytest.raises(DataFormatError, match="conversation"):
        list(iter_file(path))
    _write_raw(path, [GOOD] * 600)
    assert [r for r, _ in iter_file(path, start_row=555, batch_size=100)] == list(range(555, 600))
