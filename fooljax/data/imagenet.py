"""(placeholder: filled in by its issue; registers its datasets on import)."""
