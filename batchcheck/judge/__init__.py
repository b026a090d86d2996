"""Judging: tolerance from the noise floor, roots, causes and hints."""
