"""Runners for every format, the latency harness, parity and reports (issues 4, 7)."""
