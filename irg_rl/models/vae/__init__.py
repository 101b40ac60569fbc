"""VAEs behind one interface (`base.LatentCodec`): the FLUX autoencoder and a tiny conv AE here, and kinds that
plug-ins provide (the ShapesWorld task's exact `grid` codec) through the `irg_rl.vae` entry-point group: an entry
`KIND = "module:Class"` names a `LatentCodec` class with a `load(file, device=...)` classmethod."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from .base import LatentCodec, float_to_images, images_to_float

ENTRY_POINT_GROUP = "irg_rl.vae"


def vae_class(kind: str, where: str = "") -> type[LatentCodec]:
    """The codec class of a VAE kind: built in (flux, tiny) or registered by a plug-in under `irg_rl.vae`."""
    if kind == "flux":
        from .flux_ae import FluxAutoencoder

        return FluxAutoencoder
    if kind == "tiny":
        from .tiny_ae import TinyAutoencoder

        return TinyAutoencoder
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
    if not found:
        plugins = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise ValueError(
            f"{where}unknown vae_kind {kind!r}: built in are flux | tiny, plug-ins registered under the "
            f"'{ENTRY_POINT_GROUP}' entry points are {plugins or 'none'} (is irg-rl installed with `pip install -e .`?)"
        )
    return found[0].load()


def load_vae(path: str | Path, cfg, device="cpu") -> LatentCodec:
    """The VAE of checkpoint directory `path` (file ae.safetensors), of kind `cfg.vae_kind`."""
    file = Path(path) / "ae.safetensors"
    cls = vae_class(cfg.vae_kind, f"{path}/config.json: ")
    return cls.load(file, device=device)


__all__ = ["LatentCodec", "float_to_images", "images_to_float", "load_vae", "vae_class", "ENTRY_POINT_GROUP"]
