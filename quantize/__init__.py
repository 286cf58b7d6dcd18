"""int8 / fp16 recipes per format, calibration data and sweeps (issue 6)."""
