"""Experiments as jobs: run in this process, or fanned out on Ray (docs/distributed.md)."""

from pocketbert.executor.jobs import Job, Outcome, Tree, make_job, run_job
from pocketbert.executor.journal import Journal
from pocketbert.executor.pools import InProcess, RayPool, executor

__all__ = ["InProcess", "Job", "Journal", "Outcome", "RayPool", "Tree", "executor", "make_job", "run_job"]
