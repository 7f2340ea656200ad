"""One module per incident-manual entry (A-1 … B-4); the page in ``runbooks/`` declares its signals."""
