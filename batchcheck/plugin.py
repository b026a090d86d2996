"""pytest plugin for batchcheck (being written)."""
