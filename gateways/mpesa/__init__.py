"""Payment gateway: mpesa (being written)."""
