"""Where jobs run: in this process (the default: Ray is never imported), or on Ray.

``InProcess`` runs jobs one after another as pocketbert always has. ``RayPool`` starts a
private local Ray (``--workers N``) or joins an existing cluster (``--ray auto|ADDRESS``) and
fans jobs out, one core each when there are more jobs than cores; a worker that dies is
replaced and its job retried. Timing is different work: ``run_exclusive`` gives a job a whole node (all of its CPUs and the node's
one ``pocketbert_timing`` resource), so no other job shares its cores while it times.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable

from pocketbert.errors import PocketbertError, first_line
from pocketbert.executor.jobs import Job, Outcome, Tree, run_job

TIMING_RESOURCE = "pocketbert_timing"  # one per node that may time: declare it on a cluster's nodes
RETRIES = 2  # a job whose worker dies is run again this many times
OBJECT_STORE_BYTES = 2 * 1024**3  # a private Ray reserves 30% of memory otherwise; artifacts spill past this


# called with each outcome as its job ends; the jobs it returns (that one's follow-ups: the
# quantized files of a float export) join the queue at once, not after the whole batch
Finished = Callable[[Outcome], "list[Job] | None"]


class _Pool:
    """What every pool is used as: a context manager that closes it. ``run(jobs, finished)``
    returns the outcomes of ``jobs``, in order; follow-ups' outcomes reach ``finished`` only."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcess(_Pool):
    """Jobs one after another in this process."""

    workers = 1
    description = "in-process"

    def run(self, jobs: list[Job], finished: Finished = lambda outcome: None) -> list[Outcome]:
        queue, outcomes = list(jobs), {}
        while queue:
            job = queue.pop(0)
            outcomes[job.key] = run_job(job)
            queue += finished(outcomes[job.key]) or []
        return [outcomes[job.key] for job in jobs]

    def run_exclusive(self, job: Job) -> Outcome:
        return run_job(job)


def _resolved(job: Job) -> Job:
    """The job with the Trees its arguments reference fetched from the object store."""
    import ray

    def fetch(value):
        if isinstance(value, ray.ObjectRef):
            return ray.get(value)
        if isinstance(value, list):
            return [fetch(v) for v in value]
        return value

    return dataclasses.replace(job, arguments={k: fetch(v) for k, v in job.arguments.items()})


def _run_in_worker(job: Job, threads: int | None) -> Outcome:
    return run_job(_resolved(job), threads)


def _remove_stale_work() -> None:
    from pocketbert.atomic import remove_stale_work

    remove_stale_work()


class RayPool(_Pool):
    """Jobs on Ray: a private local instance of ``workers`` CPUs, or the cluster at ``address``."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise PocketbertError("--workers/--ray need Ray: pip install 'pocketbert[distributed]'") from None
        self._ray = ray
        self._temp_dir = None
        self._stored: dict[str, object] = {}
        if address is None:
            # Ray 2.60 turns on token auth and writes ~/.ray/auth_token unless told not to; a private
            # instance listens on loopback only and keeps its sessions in its own temp dir
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            base = tempfile.gettempdir()
            self._temp_dir = tempfile.mkdtemp(prefix="pbray-", dir=base if len(base) <= 24 else "/tmp")  # Ray's socket paths: short
            try:
                ray.init(num_cpus=workers, resources={TIMING_RESOURCE: 1}, include_dashboard=False,
                         object_store_memory=OBJECT_STORE_BYTES, log_to_driver=False, configure_logging=False,
                         _temp_dir=self._temp_dir, _node_ip_address="127.0.0.1")
            except Exception as exc:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                raise PocketbertError(f"could not start Ray with {workers} workers: {first_line(exc)}") from None
            self.description = f"a local Ray of {workers} workers"
        else:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except Exception as exc:
                raise PocketbertError(f"--ray {address}: could not join the cluster: {first_line(exc)}") from None
            self.description = f"the Ray cluster at {address}"
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def _shipped(self, job: Job) -> Job:
        """Trees go to the object store once each (a checkpoint shared by every job of a sweep)."""
        def store(value):
            if isinstance(value, Tree):
                if value.sha256 not in self._stored:
                    self._stored[value.sha256] = self._ray.put(value)
                return self._stored[value.sha256]
            if isinstance(value, list):
                return [store(v) for v in value]
            return value

        return dataclasses.replace(job, arguments={k: store(v) for k, v in job.arguments.items()})

    def _collect(self, submitted: dict, finished: Finished, submit=None) -> dict[str, Outcome]:
        """Outcomes as tasks end; ``submit(job)`` starts a follow-up ``finished`` returns."""
        ray = self._ray
        outcomes: dict[str, Outcome] = {}
        pending = list(submitted)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                job = submitted[done[0]]
                try:
                    outcome = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    outcome = Outcome(job.key, job.label, error=f"its worker failed {RETRIES + 1} times: {first_line(exc)}")
                outcomes[job.key] = outcome
                for follow_up in finished(outcome) or []:
                    ref = submit(follow_up)
                    submitted[ref] = follow_up
                    pending.append(ref)
        finally:
            for ref in pending:  # interrupted: nothing keeps running after we stop
                ray.cancel(ref, force=True)
        return outcomes

    def run(self, jobs: list[Job], finished: Finished = lambda outcome: None) -> list[Outcome]:
        """Fewer jobs than CPUs (a sweep's one float export) get several CPUs each, and as many
        math threads: a lone job on one core left the others idle. Follow-ups get one CPU each:
        they start while the batch's other jobs still run."""
        largest_node = max(int(n["Resources"].get("CPU", 1)) for n in self._ray.nodes() if n.get("Alive"))
        cpus = max(1, min(largest_node, self.workers // max(1, len(jobs))))  # a task runs on one node

        def submit(job: Job, cpus: int = 1):
            remote = self._ray.remote(_run_in_worker).options(num_cpus=cpus, max_retries=RETRIES)
            return remote.remote(self._shipped(job), cpus)

        outcomes = self._collect({submit(job, cpus): job for job in jobs}, finished, submit)
        return [outcomes[job.key] for job in jobs]

    def run_exclusive(self, job: Job) -> Outcome:
        """On the first node that declares the timing resource, holding all of its CPUs."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in self._ray.nodes() if n.get("Alive") and n["Resources"].get(TIMING_RESOURCE)]
        if not nodes:
            raise PocketbertError(f"no Ray node declares the {TIMING_RESOURCE!r} resource that timing needs "
                                  f"(start a node with --resources '{{\"{TIMING_RESOURCE}\": 1}}')")
        node = nodes[0]
        remote = self._ray.remote(_run_in_worker).options(
            num_cpus=node["Resources"].get("CPU", 1), resources={TIMING_RESOURCE: 1}, max_retries=RETRIES,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
        return self._collect({remote.remote(self._shipped(job), None): job}, lambda outcome: None)[job.key]

    def close(self) -> None:
        """Scratch of killed workers removed on every node, then Ray and its temp dir gone."""
        ray = self._ray
        if not ray.is_initialized():
            return
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            clean = ray.remote(_remove_stale_work)
            ray.get([clean.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
                     for n in ray.nodes() if n.get("Alive")], timeout=60)
        except Exception:  # noqa: BLE001 - best effort: the next pocketbert on the node removes them too
            pass
        finally:
            self._stored.clear()
            ray.shutdown()
            if self._temp_dir:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
        _remove_stale_work()  # a local pool's workers ran on this machine


def executor(workers: int | None = None, ray_address: str | None = None):
    """In-process unless ``workers`` (a private local Ray) or ``ray_address`` (a cluster) is given."""
    if workers and ray_address:
        raise PocketbertError("give --workers (a local Ray) or --ray ADDRESS (a cluster), not both")
    if workers or ray_address:
        return RayPool(workers=workers, address=ray_address)
    return InProcess()
