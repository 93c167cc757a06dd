"""Reports: a format-free document built from the stored evaluation, rendered by reporter plugins."""
