"""One module per incident-manual entry (A-1 … B-4); its page in ``pages/`` declares its signals and steps."""
