"""(placeholder: filled in by its issue; registers its models on import)."""
