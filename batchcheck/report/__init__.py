"""Reports of a result: terminal, failure tables, JSON."""
