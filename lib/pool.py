"""The build's trainings, side by side: a pool of worker processes, the costliest first.

Each worker trains one (model, seed) on its share of the cores, then, once every training
of the model's seed is finished, computes the evaluations and 2D-only checks that the
results chapter reads (:func:`lib.experiment.prepare`), so that these also run side by side.
The pool prints "model k of N" as each training starts and ends, with the elapsed time and
an estimate of the training time left.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import data as D
from .experiment import (
    ensure_model,
    ensure_training,
    model_config,
    params_source,
    prepare,
    profile_name,
    restart_of,
    restart_seeds,
    run_dir,
)
from .runs import Run, RunError, forced
from .splits import exit_on_sigterm


def default_workers() -> int:
    """Trainings run side by side on a CPU: as many as the cores the process may use, at
    most two (on the 2-core machine, two single-threaded trainings do more than one training
    on two threads: its matrices are small). One on a GPU."""
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(2, len(os.sched_getaffinity(0))))


def job_name(model: str, seed: int) -> str:
    """``ours (seed 1)``; a restart: ``ours (seed 1, restart 2)``."""
    base, restart = restart_of(seed)
    if not restart:
        return model + (f" (seed {seed})" if seed else "")
    return f"{model} (seed {base}, restart {restart + 1})"


def job_cost(cfg: dict) -> float:
    """A rough relative cost of a training (poses x epochs x work per pose, measured on the
    2-core CPU: the supervised step costs a quarter of a VAE-GAN step, the cycle half as
    much again); used to start the long trainings first and to estimate what is left."""
    per_pose = {"supervised": 0.25, "vae": 0.5}.get(cfg["mode"], 1.0)
    per_pose += 0.5 if cfg["lambda_cycle"] > 0 else 0.0
    return per_pose * cfg["epochs"] * (cfg["train_size"] or 1.0)


def _train_job(profile: str, model: str, seed: int, threads: int, line: str,
               t0: float) -> tuple[float, float]:
    """One training in a worker process: this (model, seed) alone on ``threads`` threads, no
    bar (two bars would garble each other); then, once every restart of the model's seed is
    finished, the evaluations and 2D-only checks that the results chapter reads
    (:func:`lib.experiment.prepare`, cached beside the run); ``line`` is printed as it starts, with
    the time since ``t0``. Returns the seconds of both parts."""
    import torch

    exit_on_sigterm()  # stopped by the build: clean up temporary files as on Ctrl-C
    torch.set_num_threads(threads)
    sys.stdout.write(f"{line}; {elapsed(t0)}\n")  # one write: workers print side by side
    sys.stdout.flush()
    t = time.perf_counter()
    ensure_training(model_config(profile, model, seed, progress=False),
                    run_dir(profile, model, seed), profile)  # this one, not its restarts
    t_check = time.perf_counter()
    spare = 0.0  # seconds of spare restarts: training, not checks
    base = restart_of(seed)[0]  # the model's seed that this training is a restart of
    seeds = restart_seeds(profile, model, base)
    if all(Run(run_dir(profile, model, s)).finished(model_config(profile, model, s))
           for s in seeds):  # else the last restart prepares
        # two workers that finish a seed's last two restarts together: one at a time here,
        # so that a spare is trained once (the second then finds it and the checks done)
        first = run_dir(profile, model, base)
        with open(first.with_name(f".{first.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            t_spare, known = time.perf_counter(), len(restart_seeds(profile, model, base))
            ensure_model(profile, model, base, progress=False)  # spare restarts, if needed
            spares = restart_seeds(profile, model, base)[known:]
            if spares:
                spare = time.perf_counter() - t_spare
                sys.stdout.write(f"{job_name(model, base)}: a training agreed with no other; "
                                 f"trained {', '.join(job_name(model, s) for s in spares)} "
                                 f"in {spare / 60:.1f} min; {elapsed(t0)}\n")
                sys.stdout.flush()
            prepare(profile, model, base)
    return t_check - t + spare, time.perf_counter() - t_check - spare


def _epochs_done(folder: Path) -> int:
    path = Run(folder).history_path
    return len(path.read_text().splitlines()) if path.is_file() else 0


def train_all(profile: str, jobs: list[tuple[str, int]], workers: int, t0: float) -> dict:
    """Train every (model, seed) of ``jobs`` not finished yet, ``workers`` at a time, the
    costliest first; prints "model k of N" as each starts and as it finishes, with the
    elapsed time and an estimate of the training time left. Returns {"train <job>": s}."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    name = profile_name(profile)
    cfgs = {job: model_config(profile, *job) for job in jobs}
    todo = [job for job in jobs if not Run(run_dir(profile, *job)).finished(cfgs[job])]
    source = params_source(profile)  # before any training: the runs it would replace
    blocked = [why for job in todo if (why := Run(run_dir(profile, *job)).in_the_way(
        cfgs[job], source))]
    if blocked and not forced():
        more = f" (and {len(blocked) - 1} more runs)" if len(blocked) > 1 else ""
        raise RunError(blocked[0] + more)
    for job in jobs:
        if job not in todo:  # reused (oriented if not yet)
            ensure_training(cfgs[job], run_dir(profile, *job), profile)
    if not todo:
        if jobs:
            print(f"[book {name}] all {len(jobs)} trainings finished already: reused", flush=True)
        return {}
    cost = {job: job_cost(cfgs[job]) for job in todo}
    todo.sort(key=lambda job: -cost[job])
    D.load(cfgs[todo[0]], "train", progress=True)  # the data cache, built once, not per worker
    workers = max(1, min(workers, len(todo)))
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    print(f"[book {name}] {len(todo)} of {len(jobs)} trainings to do, {workers} at a time "
          f"on {threads} thread(s) each, the longest first", flush=True)
    timings, finished = {}, []
    t_train = time.perf_counter()

    def left() -> str:
        """Training time left, from the share of the work (cost-weighted epochs) done."""
        done = sum(cost[j] * (1.0 if j in finished else min(
            1.0, _epochs_done(run_dir(profile, *j)) / cfgs[j]["epochs"])) for j in todo)
        rest = (time.perf_counter() - t_train) * (sum(cost.values()) - done) / max(done, 1e-9)
        return f", about {int(rest) // 60} min {int(rest) % 60:02d} s of training left"

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    queue, pending = list(enumerate(todo, 1)), {}

    def submit_next():
        """Hand out one more training: at most ``workers`` are ever queued, so a worker
        orphaned by a killed parent finishes its own training and finds nothing more to do."""
        k, job = queue.pop(0)
        pending[pool.submit(_train_job, profile, *job, threads,
                            f"[book {name}] model {k} of {len(todo)}: {job_name(*job)}",
                            t0)] = job

    # SIGTERM (kill, a scheduler's stop) ends the build like Ctrl-C: the workers are stopped
    main_thread = threading.current_thread() is threading.main_thread()  # (signal's rule)
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        for _ in range(workers):
            submit_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    seconds, check = future.result()  # a failed training raises here
                except BrokenProcessPool:
                    raise RunError(f"{run_dir(profile, *job)}: a training process died (killed, "
                                   f"or out of memory?); build again to resume, or use "
                                   f"--workers 1") from None
                finished.append(job)
                model, seed = job
                key = model + (f" seed {seed}" if seed else "")
                timings[f"train {key}"] = round(seconds, 1)
                timings[f"check {key}"] = round(check, 1)
                print(f"[book {name}] model {todo.index(job) + 1} of {len(todo)} done "
                      f"({len(finished)} of {len(todo)} finished): {job_name(*job)} in "
                      f"{seconds / 60:.1f} min, evaluated in {check:.0f} s; "
                      f"{elapsed(t0)}{left() if pending or queue else ''}", flush=True)
                if queue:
                    submit_next()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        # an error or Ctrl-C: stop the other trainings (they resume from their checkpoints)
        procs = getattr(pool, "_processes", None) or {}  # the executor's {pid: process}
        for proc in list(procs.values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    return timings


def _terminate(signum, frame):
    """SIGTERM handler of :func:`train_all`: unwind (its ``finally`` stops the workers)."""
    raise SystemExit(128 + signum)


def elapsed(t0: float) -> str:
    """``t0``: ``time.time()`` at the start of the build (also in worker processes)."""
    m, s = divmod(int(time.time() - t0), 60)
    return f"{m} min {s:02d} s elapsed"
