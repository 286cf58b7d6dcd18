"""Speed: the latency harness, the papers' protocols, adb + benchmark_model, FLOPs, reports and plots."""
