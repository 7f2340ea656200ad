"""The runbook engine: probe (all I/O) → evaluate (pure) → plan (pure); apply and verify come later."""
