"""Model generations shared by the processes of one ``cjm serve``: how a reload reaches them all.

A process that loads and validates a set of champions *publishes* it as a generation: a
strictly increasing integer (under a file lock, so two processes never publish the same one),
a snapshot of the three bundles in ``<state>/gen-<n>/<task>/`` written once and never changed,
and the marker ``<state>/generation.json`` (the generation, the sha256 of each snapshot's
``bundle.json``, the source), written to a temporary file and renamed. Every process watches
the marker and loads the snapshot of a newer generation, checking each ``bundle.json`` against
the marker's checksum (which pins ``model.txt`` through the bundle's own checksum), so every
process serves exactly the bytes the publisher validated, whatever happens to the models
folder meanwhile.

Each process reports what it serves in ``<state>/processes/<pid>-<token>.json``; a reload
waits for every live process to report its generation. The last ``KEEP`` snapshots are kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cjm_ml.artifact import ModelArtifact
from cjm_ml.io import write_json_atomic
from cjm_ml.params import TASKS, Task

log = logging.getLogger(__name__)

#: Snapshots kept: the newest and the two before it (a process still loading one of those
#: finishes; an older one is gone and the process moves on to the newest).
KEEP = 3
_SNAPSHOT = re.compile(r"^gen-(\d+)$")


class GenerationError(RuntimeError):
    """A generation that cannot be published or loaded; the message says which and why."""


@dataclass(frozen=True)
class Published:
    """The marker: the newest generation, its bundles' checksums and where they came from."""

    generation: int
    checksums: dict[str, str]
    source: str
    published_at: str
    published_by: int


@dataclass(frozen=True)
class ProcessReport:
    """What one serving process serves: its generation, each task's model version, and the
    last generation it failed to load (with why), if any."""

    pid: int
    generation: int
    versions: dict[str, str]
    failed_generation: int | None
    error: str | None
    started: str | None
    at: str


class GenerationStore:
    """The generations under one state folder (``<models_dir>/.serving``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.marker = self.folder / "generation.json"
        self.processes_dir = self.folder / "processes"

    def published(self) -> Published | None:
        """The newest published generation, or None when none is (or the marker is unreadable:
        logged; the next publish writes a good one)."""
        try:
            raw = json.loads(self.marker.read_text())
            return Published(
                generation=int(raw["generation"]),
                checksums={str(k): str(v) for k, v in raw["checksums"].items()},
                source=str(raw["source"]),
                published_at=str(raw["published_at"]),
                published_by=int(raw["published_by"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("model generation marker %s unreadable: %s", self.marker, exc)
            return None

    def marker_stamp(self) -> tuple[int, int] | None:
        """The marker's (inode, mtime): a cheap way to tell it changed. None: no marker."""
        try:
            st = self.marker.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def publish(self, models: Mapping[Task, ModelArtifact], source: str, floor: int = 0) -> int:
        """Snapshot ``models`` as the next generation (above every published one and
        ``floor``) and point the marker at it; the generation. Raises ``GenerationError``
        when the state folder cannot be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._locked():
                generation = max(floor, self._highest()) + 1
                snapshot = self.folder / f"gen-{generation}"
                checksums: dict[str, str] = {}
                for task, model in models.items():
                    model.save(snapshot / task)
                    checksums[task] = _sha256(snapshot / task / "bundle.json")
                marker = Published(
                    generation=generation,
                    checksums=checksums,
                    source=source,
                    published_at=datetime.now(UTC).isoformat(),
                    published_by=os.getpid(),
                )
                write_json_atomic(asdict(marker), self.marker)
                self._prune(generation)
        except OSError as exc:
            message = f"cannot publish a model generation in {self.folder}: {exc}"
            raise GenerationError(message) from exc
        return generation

    def load(self, published: Published) -> dict[Task, ModelArtifact]:
        """The published generation's models, each ``bundle.json`` checked against the
        marker's checksum first. Raises ``GenerationError`` naming the bundle and why."""
        models: dict[Task, ModelArtifact] = {}
        snapshot = self.folder / f"gen-{published.generation}"
        for task in TASKS:
            folder = snapshot / task
            try:
                if _sha256(folder / "bundle.json") != published.checksums.get(task):
                    raise GenerationError(f"{folder}: not the bundle published (checksum differs)")
                models[task] = ModelArtifact.load(folder)
            except (OSError, ValueError) as exc:
                raise GenerationError(f"generation {published.generation}, {task}: {exc}") from exc
        return models

    # ---------------------------------------------------------------------- processes
    def report(self, token: str, report: ProcessReport) -> None:
        """Record what this process serves (a warning if the state folder is not writable)."""
        try:
            write_json_atomic(asdict(report), self.processes_dir / f"{token}.json")
        except OSError as exc:
            log.warning("cannot record this process's model generation: %s", exc)

    def forget(self, token: str) -> None:
        """Remove this process's report (it stops serving)."""
        (self.processes_dir / f"{token}.json").unlink(missing_ok=True)

    def processes(self) -> list[ProcessReport]:
        """The reports of the live serving processes, by pid; a dead process's report is
        removed."""
        out = []
        for path in sorted(self.processes_dir.glob("*.json")):
            try:
                report = ProcessReport(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # being replaced, or removed meanwhile
            if alive(report.pid, report.started):
                out.append(report)
            else:
                path.unlink(missing_ok=True)
        return sorted(out, key=lambda r: r.pid)

    # ---------------------------------------------------------------------- inside
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.folder / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _snapshots(self) -> dict[int, Path]:
        found = {}
        for path in self.folder.iterdir():
            match = _SNAPSHOT.match(path.name)
            if match:
                found[int(match.group(1))] = path
        return found

    def _highest(self) -> int:
        """The highest generation published or snapshotted (0: none): the marker alone
        could be damaged, and generations must never go back."""
        published = self.published()
        return max([0, *self._snapshots(), published.generation if published else 0])

    def _prune(self, newest: int) -> None:
        for generation, path in self._snapshots().items():
            if generation <= newest - KEEP:
                shutil.rmtree(path, ignore_errors=True)


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell a reused pid
    apart; None where /proc is not available or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` (started at ``started``, see ``process_started``) still runs: a
    zombie (dead, not yet reaped) or a reused pid is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return _signalable(pid)
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] not in ("Z", "X") and (started is None or fields[19] == started)


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
