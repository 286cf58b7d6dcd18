"""Correctness: does a file compute what the PyTorch model computes, and keep its quality?

Quality metrics on real text (``metrics``), export validation (``validate``), the one agreement
measure (``agreement``), labelled evaluation data (``eval_data``) and ``pocketbert parity`` (``parity``).
Speed (latency, protocols, FLOPs, reports) is ``pocketbert.benchmarks``'s.
"""
