"""Two-stage IRGL supervised training: recipe, setup, conversation packing, losses, mode sampler, EMA, trainer."""
