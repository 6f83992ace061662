"""Development tooling: what tests, benchmarks and the demo share. Never shipped, never a test."""
