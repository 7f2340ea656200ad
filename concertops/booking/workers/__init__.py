"""Background work of one instance; every worker is safe to run in several instances at once."""
