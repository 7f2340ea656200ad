"""Drive the reference backend: load scenarios (and, later, incidents)."""
