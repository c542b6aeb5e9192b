"""(placeholder: the CPPN encoding, issue 4)."""
