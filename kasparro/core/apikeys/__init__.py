"""API keys for REST clients: stored hashed, revocable, optionally expiring."""
