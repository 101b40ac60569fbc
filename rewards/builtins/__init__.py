"""Built-in rewards (registered by name in rewards.registry.BUILTINS)."""
