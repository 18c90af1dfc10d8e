"""Built-in payment gateway plugins. Each uses only the gateway hooks in ``core.hookspecs``."""
