"""The pytest plugin: options, generated items, the fixture and the baseline gate."""
