"""Run a child command tree (``dagster dev``: its webserver, daemon and code servers) until it ends or this process
is asked to stop, and then leave nothing of it behind.

Why not just forward the signal: a process started as a background job inherits SIGINT *ignored*, and ``dagster dev``
maps SIGTERM onto its SIGINT handler, so both signals did nothing and the UI, daemon and code servers outlived every
stop request. Here the handlers are installed before the child starts (an exec resets caught signals to their
default, so the child gets a working SIGINT again), the child leads its own session (its whole tree can be signalled
as one process group), and whatever has not exited after a grace period is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence

import psutil

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_SECONDS = 6.0  # for the child's own orderly shutdown; then SIGTERM to the rest, then SIGKILL
KILL_AFTER_SECONDS = 2.0


def run_until_stopped(command: Sequence[str]) -> int:
    """Run ``command``; on SIGTERM, SIGINT or SIGHUP (ignored at start or not) stop its whole tree.

    Returns the child's exit status, or 0 when it was stopped on request."""
    received: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
    try:
        child = subprocess.Popen(command, start_new_session=True)
        while child.poll() is None and not received:
            time.sleep(0.2)
        if child.returncode is not None and not received:
            stop_tree(child.pid, descendants(child.pid))  # anything it left behind
            return child.returncode
        stop_tree(child.pid, descendants(child.pid), first_signal=received[0])
        child.wait()
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_tree(leader: int, known: list[psutil.Process], first_signal: int = signal.SIGTERM) -> None:
    """Ask the session led by ``leader`` to stop, wait for an orderly exit, then terminate and kill the rest.

    ``known`` are the descendants seen before the stop: one that moved to another process group, or lost its parent
    during the shutdown, is still found and stopped."""
    everyone = {process.pid: process for process in known}
    try:
        everyone[leader] = psutil.Process(leader)
    except psutil.NoSuchProcess:
        pass
    _signal_group(leader, first_signal)
    _, alive = psutil.wait_procs(list(everyone.values()), timeout=GRACE_SECONDS)
    for process in alive:
        everyone.update({child.pid: child for child in _children(process)})
    alive = [process for process in everyone.values() if _running(process)]
    for process in alive:
        _send(process, signal.SIGTERM)
    _, alive = psutil.wait_procs(alive, timeout=KILL_AFTER_SECONDS)
    _signal_group(leader, signal.SIGKILL)
    for process in alive:
        _send(process, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=KILL_AFTER_SECONDS)


def _signal_group(leader: int, signum: int) -> None:
    try:
        os.killpg(leader, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send(process: psutil.Process, signum: int) -> None:
    try:
        process.send_signal(signum)
    except psutil.NoSuchProcess:
        pass
