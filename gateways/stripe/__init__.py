"""Payment gateway: stripe (being written)."""
