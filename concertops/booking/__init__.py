"""The reference booking backend: the service the runbooks operate on, able to fail as the manual says."""
