"""Model configs: the three json files of a BAGEL checkpoint as dataclasses, named sizes, and the recipe schema.

`LLMConfig` mirrors Qwen2 `llm_config.json`, `ViTConfig` mirrors SigLIP `vit_config.json`, `BagelConfig` mirrors
BAGEL's `config.json` plus the VAE description. Unknown json keys are kept in `extra` and written back unchanged,
so a real checkpoint's files round-trip. Note the official convention for the ViT: `vit_config.json` names one
layer more than is used (SigLIP-so400m has 27; BAGEL drops the last and runs 26); `ViTConfig.num_hidden_layers`
holds the file's value and `ViTConfig.num_layers_used` the number actually built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# VAE kinds built into the models package; plug-ins add theirs under the `irg_rl.vae` entry points (the
# ShapesWorld task's `grid` codec)
VAE_KINDS = ("flux", "tiny")


def vae_kinds() -> tuple[str, ...]:
    """Every VAE kind a config may name: the built-in ones and those registered by plug-ins."""
    from importlib.metadata import entry_points

    return VAE_KINDS + tuple(sorted(ep.name for ep in entry_points(group="irg_rl.vae")))


def _from_json_dict(cls: type, data: dict, source: str) -> Any:
    """Build dataclass `cls` from a json dict; unknown keys go to `extra`, wrong types raise naming the key."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names}
    for f in dataclasses.fields(cls):
        if f.name in known and f.type in ("int", "float", "bool", "str"):
            v = known[f.name]
            ok = {
                "int": isinstance(v, int) and not isinstance(v, bool),
                "float": isinstance(v, (int, float)) and not isinstance(v, bool),
                "bool": isinstance(v, bool),
                "str": isinstance(v, str),
            }[f.type]
            if not ok:
                raise ValueError(f"{source}: key '{f.name}' must be {f.type}, got {v!r}")
            if f.type == "float":
                known[f.name] = float(v)
    return cls(**known, extra=extra)


def _to_json_dict(obj: Any) -> dict:
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "extra"}
    return {**obj.extra, **out}


@dataclass
class LLMConfig:
    """Qwen2 decoder dims (keys of `llm_config.json`)."""

    # vocabulary size (rows of embed_tokens and lm_head)
    vocab_size: int = 152064
    # model width
    hidden_size: int = 3584
    # MLP inner width
    intermediate_size: int = 18944
    # number of decoder layers
    num_hidden_layers: int = 28
    # query heads
    num_attention_heads: int = 28
    # key/value heads (grouped-query attention)
    num_key_value_heads: int = 4
    # MLP activation (Qwen2: silu)
    hidden_act: str = "silu"
    # longest supported sequence (informational; RoPE is computed on the fly)
    max_position_embeddings: int = 32768
    # epsilon of every RMSNorm
    rms_norm_eps: float = 1e-6
    # RoPE base (Qwen2.5: 1e6)
    rope_theta: float = 1000000.0
    # share embed_tokens and lm_head (BAGEL forces False)
    tie_word_embeddings: bool = False
    # RMSNorm on per-head queries and keys (BAGEL forces True)
    qk_norm: bool = True
    # decoder layer kind; only the Mixture-of-Transformers layer is implemented
    layer_module: str = "Qwen2MoTDecoderLayer"
    # json keys this class does not model, written back unchanged
    extra: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def validate(self, source: str = "llm_config") -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{source}: hidden_size {self.hidden_size} not divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"{source}: num_attention_heads not divisible by num_key_value_heads")
        if self.head_dim % 2:
            raise ValueError(f"{source}: head_dim {self.head_dim} must be even for RoPE")
        if self.layer_module != "Qwen2MoTDecoderLayer":
            raise NotImplementedError(
                f"{source}: layer_module {self.layer_module!r} is not implemented; only 'Qwen2MoTDecoderLayer'"
            )
        if self.tie_word_embeddings:
            raise NotImplementedError(
                f"{source}: tie_word_embeddings=true is not supported (BAGEL unties them)"
            )
        scaling = self.extra.get("rope_scaling")
        if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
            # the official code would rescale RoPE (yarn, dynamic, ...); we implement plain RoPE only
            raise NotImplementedError(
                f"{source}: rope_scaling {scaling!r} is not implemented; only plain RoPE (rope_scaling null)"
            )

    @classmethod
    def from_dict(cls, data: dict, source: str = "llm_config.json") -> LLMConfig:
        cfg = _from_json_dict(cls, data, source)
        # BAGEL's loaders override these two regardless of the file (qk-norm on, untied head)
        cfg.qk_norm, cfg.tie_word_embeddings = True, False
        # ... and set the MoT layer: the released llm_config.json names the plain Qwen2 layer
        if cfg.layer_module in ("Qwen2DecoderLayer", "Qwen2MoTDecoderLayer"):
            cfg.layer_module = "Qwen2MoTDecoderLayer"
        return cfg

    def to_dict(self) -> dict:
        return {"model_type": "qwen2", **_to_json_dict(self)}


@dataclass
class ViTConfig:
    """SigLIP NaViT vision tower dims (keys of `vit_config.json`)."""

    # model width
    hidden_size: int = 1152
    # MLP inner width
    intermediate_size: int = 4304
    # layers named in the file; one fewer is built (BAGEL drops the last SigLIP layer)
    num_hidden_layers: int = 27
    # attention heads
    num_attention_heads: int = 16
    # input channels
    num_channels: int = 3
    # largest image side in pixels; (image_size // patch_size)**2 position-embedding rows
    image_size: int = 980
    # patch side in pixels
    patch_size: int = 14
    # MLP activation
    hidden_act: str = "gelu_pytorch_tanh"
    # LayerNorm epsilon
    layer_norm_eps: float = 1e-6
    # json keys this class does not model, written back unchanged
    extra: dict = field(default_factory=dict)

    @property
    def num_layers_used(self) -> int:
        return self.num_hidden_layers - 1

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.num_channels * self.patch_size**2

    def validate(self, source: str = "vit_config") -> None:
        if self.num_hidden_layers < 2:
            raise ValueError(f"{source}: num_hidden_layers must be >= 2 (the last one is dropped)")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{source}: hidden_size not divisible by num_attention_heads")

    @classmethod
    def from_dict(cls, data: dict, source: str = "vit_config.json") -> ViTConfig:
        return _from_json_dict(cls, data, source)

    def to_dict(self) -> dict:
        return {"model_type": "siglip_vision_model", **_to_json_dict(self)}


@dataclass
class BagelConfig:
    """BAGEL's `config.json` (unified model settings) plus the VAE description and the two sub-configs."""

    # build the generation path (time embedder, vae2llm, llm2vae, latent pos embed, *_moe_gen used)
    visual_gen: bool = True
    # build the understanding path (SigLIP + connector + vit pos embed)
    visual_und: bool = True
    # latent patch side: p x p latent pixels form one LLM token of p*p*C dims
    latent_patch_size: int = 2
    # latent grid side covered by the 2-D sin-cos latent position table (max_latent_size**2 rows)
    max_latent_size: int = 64
    # latent grid coordinates are multiplied by this before the 2-D sin-cos table (BAGEL: 1.0); small grids
    # (ShapesWorld's 4x4) need > 1 for neighbouring cells to differ enough to be matched by attention
    latent_pos_scale: float = 1.0
    # ViT patch grid side covered by the ViT position tables
    vit_max_num_patch_per_side: int = 70
    # activation between the two connector layers
    connector_act: str = "gelu_pytorch_tanh"
    # position ids by bucketing fractional coordinates instead of raw grid coordinates
    interpolate_pos: bool = False
    # timestep shift applied to training timesteps (BAGEL default 1.0; recipes usually set it)
    timestep_shift: float = 1.0
    # which VAE turns images into latents: flux | grid | tiny
    vae_kind: str = "flux"
    # latent channels of the VAE (FLUX: 16)
    vae_latent_channels: int = 16
    # pixel downsampling factor of the VAE (FLUX: 8)
    vae_downsample: int = 8
    # Qwen2 LLM dims (llm_config.json)
    llm: LLMConfig = field(default_factory=LLMConfig)
    # SigLIP dims (vit_config.json)
    vit: ViTConfig = field(default_factory=ViTConfig)
    # json keys of config.json this class does not model, written back unchanged
    extra: dict = field(default_factory=dict)

    @property
    def patch_latent_dim(self) -> int:
        return self.latent_patch_size**2 * self.vae_latent_channels

    @property
    def latent_downsample(self) -> int:
        """Pixels per LLM latent token side (VAE downsample x latent patch)."""
        return self.vae_downsample * self.latent_patch_size

    def validate(self) -> None:
        self.llm.validate()
        self.vit.validate()
        if self.vae_kind not in VAE_KINDS and self.vae_kind not in vae_kinds():
            raise ValueError(f"config.json: vae_kind must be one of {vae_kinds()}, got {self.vae_kind!r}")
        if not self.latent_pos_scale > 0:
            raise ValueError(f"config.json: latent_pos_scale must be > 0, got {self.latent_pos_scale}")
        if self.llm.hidden_size % 4:
            raise ValueError("config.json: LLM hidden_size must be divisible by 4 for the 2-D sin-cos embeds")

    def to_dict(self) -> dict:
        """The `config.json` content (sub-configs are separate files)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("llm", "vit", "extra")
        }
        return {**self.extra, **out}

    @classmethod
    def from_dicts(cls, config: dict, llm: dict, vit: dict, source: str = "checkpoint") -> BagelConfig:
        top = {k: v for k, v in config.items() if k not in ("llm_config", "vit_config", "vae_config")}
        cfg = _from_json_dict(cls, top, f"{source}/config.json")
        cfg.llm = LLMConfig.from_dict(llm, f"{source}/llm_config.json")
        cfg.vit = ViTConfig.from_dict(vit, f"{source}/vit_config.json")
        return cfg

    @classmethod
    def from_dir(cls, path: str | Path) -> BagelConfig:
        path = Path(path)
        blobs = {}
        for name in ("config.json", "llm_config.json", "vit_config.json"):
            f = path / name
            if not f.is_file():
                if name == "config.json":
                    blobs[
                        name
                    ] = {}  # the official release infers it in code; defaults below match BAGEL-7B-MoT
                    continue
                raise FileNotFoundError(f"{f}: missing; a BAGEL checkpoint directory needs {name}")
            try:
                blobs[name] = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{f}: invalid json: {e}") from e
        cfg = cls.from_dicts(
            blobs["config.json"], blobs["llm_config.json"], blobs["vit_config.json"], str(path)
        )
        cfg.validate()
        return cfg

    def write_dir(self, path: str | Path) -> None:
        path = Path(path)
        (path / "config.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        (path / "llm_config.json").write_text(json.dumps(self.llm.to_dict(), indent=2) + "\n")
        (path / "vit_config.json").write_text(json.dumps(self.vit.to_dict(), indent=2) + "\n")


def bagel_7b_mot() -> BagelConfig:
    """BAGEL-7B-MoT dims (Qwen2.5-7B LLM, SigLIP-so400m with 26 layers used, FLUX VAE, 64x64 latent table)."""
    return BagelConfig(max_latent_size=64, vit_max_num_patch_per_side=70, vae_kind="flux")


def tiny(vocab_size: int = 1024, image_size: int = 32) -> BagelConfig:
    """~1.6M-parameter CPU model for ShapesWorld: d 128, 4 layers, latent = 4x4 grid of 8-dim tokens (8x down),
    latent position table with coordinates x4 (`latent_pos_scale`)."""
    return BagelConfig(
        latent_patch_size=1,
        max_latent_size=8,
        vit_max_num_patch_per_side=image_size // 8,
        timestep_shift=3.0,
        # 4x4 latent grid: at scale 1 neighbouring cells' sin-cos rows have cosine 0.98; at 4 the ShapesWorld
        # stage-2 model's held-out turn 1 / turn 2 strict rose from 0.286 / 0.258 to 0.446 / 0.358
        latent_pos_scale=4.0,
        vae_kind="grid",
        vae_latent_channels=8,
        vae_downsample=8,
        llm=LLMConfig(
            vocab_size=vocab_size,
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_theta=10000.0,
        ),
        vit=ViTConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
        ),
    )


def micro(vocab_size: int = 64) -> BagelConfig:
    """The smallest config (for unit tests): d 32, 2 layers, 2x2 latent patches of 4 channels."""
    return BagelConfig(
        latent_patch_size=2,
        max_latent_size=8,
        vit_max_num_patch_per_side=4,
        vae_kind="tiny",
        vae_latent_channels=4,
        vae_downsample=4,
        llm=LLMConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            rope_theta=10000.0,
        ),
        vit=ViTConfig(
            hidden_size=16,
            intermediate_size=24,
            num_hidden_layers=3,
            num_attention_heads=2,
            image_size=16,
            patch_size=4,
        ),
    )


PRESETS = {"tiny": tiny, "micro": micro, "bagel-7b-mot": bagel_7b_mot}


@dataclass
class ModelRecipe:
    """How a recipe picks the model: a preset name or a checkpoint directory, plus overrides."""

    # preset name (tiny | micro | bagel-7b-mot) or a path to a BAGEL-layout checkpoint directory
    source: str = "tiny"
    # parameter dtype: float32 | bfloat16
    dtype: str = "float32"
    # override LLM width (presets only; null keeps the preset's)
    hidden_size: int | None = None
    # override LLM depth (presets only)
    num_layers: int | None = None
    # override attention heads (presets only)
    num_heads: int | None = None
    # override key/value heads (presets only)
    num_kv_heads: int | None = None
    # override MLP width (presets only)
    intermediate_size: int | None = None
    # override vocabulary size (presets only; normally taken from the trained tokenizer)
    vocab_size: int | None = None
    # override the VAE kind (presets only): flux | grid | tiny
    vae_kind: str | None = None
    # training timestep shift written into config.json (null keeps the preset's)
    timestep_shift: float | None = None
    # latent position-table coordinate scale written into config.json (presets only; null keeps the preset's)
    latent_pos_scale: float | None = None

    def is_checkpoint(self) -> bool:
        return self.source not in PRESETS

    def build_config(self) -> BagelConfig:
        """The BagelConfig for a preset with overrides applied (checkpoints: read it with BagelConfig.from_dir)."""
        if self.is_checkpoint():
            cfg = BagelConfig.from_dir(self.source)
            preset_only = (self.vae_kind, self.latent_pos_scale)
            if any(v is not None for v in [*self._llm_overrides().values(), *preset_only]):
                raise ValueError(
                    f"model.source={self.source!r} is a checkpoint: size, vae and latent_pos_scale overrides "
                    "apply to presets only"
                )
        else:
            cfg = PRESETS[self.source]()
            for key, value in self._llm_overrides().items():
                if value is not None:
                    setattr(cfg.llm, key, value)
            if self.vae_kind is not None:
                cfg.vae_kind = self.vae_kind
            if self.latent_pos_scale is not None:
                cfg.latent_pos_scale = float(self.latent_pos_scale)
        if self.timestep_shift is not None:
            cfg.timestep_shift = float(self.timestep_shift)
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"model.dtype must be float32 or bfloat16, got {self.dtype!r}")
        cfg.validate()
        return cfg

    def _llm_overrides(self) -> dict:
        return {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
        }
