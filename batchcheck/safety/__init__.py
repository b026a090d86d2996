"""Safety: refuse model files that would act (the op scan) and contain what runs (the supervised child)."""
