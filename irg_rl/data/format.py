"""The official IRGL parquet format: `<root>/<mode>/*.parquet`, a `conversation` column of JSON turn lists.

A conversation is a list of turns `{"role": "user" | "assistant", "content": ...}`. User content is a string;
assistant content is a list of parts `{"type": "text" | "image", "content", "need_loss", "need_vae", "need_vit"}`
where image content is base64-encoded image bytes. Text parts default to need_loss=True, image flags to False.
Images are kept as their encoded bytes so a write/read round trip is bit-exact.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from irg_rl.data.modes import MODES, check_mode

CONVERSATION_COLUMN = "conversation"
ROLES = ("user", "assistant")
PART_TYPES = ("text", "image")
FLAGS = ("need_loss", "need_vae", "need_vit")


class DataFormatError(ValueError):
    """A row of an IRGL parquet file does not follow the format; names the file, the row and the field."""

    def __init__(self, file: str | os.PathLike, row: int, field_path: str, problem: str):
        self.file, self.row, self.field_path, self.problem = str(file), row, field_path, problem
        super().__init__(f"{file}: row {row}: field '{field_path}': {problem}")


@dataclass
class Part:
    """One piece of assistant content: text, or an image given by its encoded bytes (PNG/JPEG/...)."""

    # "text" or "image"
    type: Literal["text", "image"]
    # the text, or the encoded image bytes
    content: str | bytes
    # text: cross-entropy target; image: noised VAE tokens with a flow-matching MSE target
    need_loss: bool = True
    # image: clean VAE tokens as a condition for later tokens
    need_vae: bool = False
    # image: ViT tokens as a condition for later tokens
    need_vit: bool = False

    def pil(self) -> Image.Image:
        """Decode an image part to an RGB PIL image (transparency composited on white, as the official loader)."""
        if self.type != "image":
            raise TypeError("Part.pil() called on a text part")
        return to_rgb(Image.open(io.BytesIO(self.content)))


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL image; an image with an alpha channel or a transparency key is composited on white
    (BAGEL's data loader does the same, so transparent pixels never become black)."""
    if image.mode == "RGBA" or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.split()[3])
        return white
    return image.convert("RGB")


@dataclass
class Turn:
    """One conversation turn: user content is a string, assistant content a list of parts."""

    # "user" or "assistant"
    role: Literal["user", "assistant"]
    # user: the prompt text; assistant: the list of parts
    content: str | list[Part] = field(default_factory=list)
    # user turns only: train cross-entropy on the prompt text too (the official format's optional "need_loss")
    need_loss: bool = False


Conversation = list[Turn]


def text_part(text: str, need_loss: bool = True) -> Part:
    return Part("text", text, need_loss=need_loss)


def image_part(
    image: bytes | np.ndarray | Image.Image, need_loss=False, need_vae=False, need_vit=False
) -> Part:
    """An image part; arrays and PIL images are stored losslessly as PNG."""
    return Part("image", encode_png(image), need_loss=need_loss, need_vae=need_vae, need_vit=need_vit)


def encode_png(image: bytes | np.ndarray | Image.Image) -> bytes:
    """PNG bytes for a uint8 HxWx3 array or a PIL image (bytes pass through unchanged)."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# JSON <-> typed conversation


def conversation_to_json(conv: Conversation) -> str:
    """Serialise in the official layout, writing every flag explicitly."""
    turns = []
    for turn in conv:
        if turn.role == "user":
            turns.append(
                {"role": "user", "content": turn.content, **({"need_loss": True} if turn.need_loss else {})}
            )
            continue
        parts = []
        for part in turn.content:  # type: ignore[union-attr]
            content = base64.b64encode(part.content).decode("ascii") if part.type == "image" else part.content
            parts.append(
                {
                    "type": part.type,
                    "content": content,
                    "need_loss": part.need_loss,
                    "need_vae": part.need_vae,
                    "need_vit": part.need_vit,
                }
            )
        turns.append({"role": "assistant", "content": parts})
    return json.dumps(turns, ensure_ascii=False)


def _flag(part: dict, name: str, default: bool, where: str, err) -> bool:
    value = part.get(name, default)
    if not isinstance(value, bool):
        raise err(f"{where}.{name}", f"must be true or false, got {value!r}")
    return value


def parse_conversation(text: str | bytes, file: str = "<memory>", row: int = 0, check_images: bool = True):
    """Parse and validate one `conversation` cell; raise `DataFormatError` naming the field on any problem."""

    def err(field_path: str, problem: str) -> DataFormatError:
        return DataFormatError(file, row, field_path, problem)

    if text is None:
        raise err(CONVERSATION_COLUMN, "is null; every row needs a JSON list of turns")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise err(CONVERSATION_COLUMN, f"is not valid JSON ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise err(CONVERSATION_COLUMN, "must be a non-empty JSON list of turns")
    conv: Conversation = []
    for t, turn in enumerate(raw):
        where = f"{CONVERSATION_COLUMN}[{t}]"
        if not isinstance(turn, dict):
            raise err(where, f"a turn must be an object with 'role' and 'content', got {type(turn).__name__}")
        role = turn.get("role")
        if role not in ROLES:
            raise err(f"{where}.role", f"must be one of {ROLES}, got {role!r}")
        if "content" not in turn or turn["content"] is None:
            raise err(f"{where}.content", "is missing")
        content = turn["content"]
        if role == "user":
            if not isinstance(content, str):
                raise err(f"{where}.content", f"user content must be a string, got {type(content).__name__}")
            need_loss = turn.get("need_loss", False)
            if not isinstance(need_loss, bool):
                raise err(f"{where}.need_loss", f"must be true or false, got {need_loss!r}")
            conv.append(Turn("user", content, need_loss=need_loss))
            continue
        if not isinstance(content, list):
            raise err(f"{where}.content", "assistant content must be a list of parts")
        conv.append(
            Turn(
                "assistant",
                [_parse_part(p, f"{where}.content[{i}]", err, check_images) for i, p in enumerate(content)],
            )
        )
    return conv


def _parse_part(part, where: str, err, check_images: bool) -> Part:
    if not isinstance(part, dict):
        raise err(where, f"a part must be an object, got {type(part).__name__}")
    kind = part.get("type")
    if kind not in PART_TYPES:
        raise err(f"{where}.type", f"unknown part type {kind!r}; expected one of {PART_TYPES}")
    if "content" not in part or part["content"] is None:
        raise err(f"{where}.content", "is missing")
    content = part["content"]
    if not isinstance(content, str):
        raise err(f"{where}.content", f"must be a string, got {type(content).__name__}")
    is_text = kind == "text"
    flags = {name: _flag(part, name, is_text and name == "need_loss", where, err) for name in FLAGS}
    if is_text:
        return Part("text", content, **flags)
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise err(f"{where}.content", "is not valid base64-encoded image bytes") from None
    if check_images:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Exception as exc:  # PIL raises many types for corrupt data
            raise err(
                f"{where}.content", f"cannot be decoded as an image ({type(exc).__name__}: {exc})"
            ) from None
    return Part("image", data, **flags)


# ---------------------------------------------------------------------------------------------------------------
# Files


def write_mode_shard(
    root: str | os.PathLike, mode: str, conversations: Iterable[Conversation], shard: int = 0
) -> Path:
    """Write conversations to `<root>/<mode>/part-<shard>.parquet` atomically (temp file + rename)."""
    check_mode(mode)
    out_dir = Path(root) / mode
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"part-{shard:05d}.parquet"
    table = pa.table(
        {CONVERSATION_COLUMN: pa.array([conversation_to_json(c) for c in conversations], pa.string())}
    )
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, row_group_size=256)
    os.replace(tmp, path)
    return path


def mode_files(root: str | os.PathLike, mode: str) -> list[Path]:
    """Sorted parquet files of one mode (empty if the mode folder is absent)."""
    return sorted((Path(root) / mode).glob("*.parquet"))


def available_modes(root: str | os.PathLike) -> list[str]:
    """The learning modes present under `root`, in canonical order."""
    return [m for m in MODES if mode_files(root, m)]


@dataclass
class ReadStats:
    """Counts of rows read and skipped, with the first few error messages."""

    # rows parsed successfully
    rows: int = 0
    # malformed rows skipped (on_error="skip")
    skipped: int = 0
    # the first error messages, for logs
    errors: list[str] = field(default_factory=list)


def iter_file(
    path: str | os.PathLike,
    on_error: str = "raise",
    stats: ReadStats | None = None,
    start_row: int = 0,
    batch_size: int = 256,
    check_images: bool = True,
) -> Iterator[tuple[int, Conversation]]:
    """Stream `(row, conversation)` from one parquet file, one record batch at a time."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    stats = stats if stats is not None else ReadStats()
    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:
        raise DataFormatError(path, -1, "<file>", f"is not a readable parquet file ({exc})") from None
    if CONVERSATION_COLUMN not in pfile.schema_arrow.names:
        raise DataFormatError(
            path, -1, CONVERSATION_COLUMN, f"column is missing (columns: {pfile.schema_arrow.names})"
        )
    row = 0
    for batch in pfile.iter_batches(batch_size=batch_size, columns=[CONVERSATION_COLUMN]):
        cells = batch.column(0).to_pylist()
        if row + len(cells) <= start_row:
            row += len(cells)
            continue
        for cell in cells:
            if row >= start_row:
                try:
                    conv = parse_conversation(cell, str(path), row, check_images)
                except DataFormatError as exc:
                    if on_error == "raise":
                        raise
                    stats.skipped += 1
                    if len(stats.errors) < 20:
                        stats.errors.append(str(exc))
                else:
                    stats.rows += 1
                    yield row, conv
            row += 1


def iter_conversations(
    root: str | os.PathLike,
    modes: Iterable[str] | None = None,
    on_error: str = "raise",
    stats: ReadStats | None = None,
    check_images: bool = True,
) -> Iterator[tuple[str, Path, int, Conversation]]:
    """Stream `(mode, file, row, conversation)` over every file of the given modes (default: all present)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"IRGL data root not found: {root}")
    for mode in list(modes) if modes is not None else available_modes(root):
        check_mode(mode)
        for path in mode_files(root, mode):
            for row, conv in iter_file(path, on_error, stats, check_images=check_images):
                yield mode, path, row, conv


def validate_dataset(root: str | os.PathLike, check_images: bool = True) -> dict[str, ReadStats]:
    """Read every row of every mode with on_error="skip"; return per-mode counts and first errors."""
    report: dict[str, ReadStats] = {}
    for mode in available_modes(root):
        stats = report.setdefault(mode, ReadStats())
        for path in mode_files(root, mode):
            for _ in iter_file(path, "skip", stats, check_images=check_images):
                pass
    return report
