"""The runbook model: signals, observations, findings, statuses, judging and the page schema.

Pure values and pure functions. It imports nothing else of concertops, so every other package can build
on it and it can be unit-tested with hand-made observations."""
