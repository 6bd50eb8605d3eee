"""Internal helpers shared by every attribution method (not public API)."""
