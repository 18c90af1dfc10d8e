"""Built-in plugins. Each package here uses only the public hooks in ``core.hookspecs``."""
