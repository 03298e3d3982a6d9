"""Quarantine: move the duplicates a report found into another folder, with an undo script.

Files are moved, never deleted. Each keeps its path relative to the scanned
folder under the quarantine folder, and a shell script written beside them
moves every file back.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .decode import file_sha256, read_file

logger = logging.getLogger(__name__)

__all__ = ["QuarantineResult", "move_duplicates"]


@dataclass
class QuarantineResult:
    """Outcome of :func:`move_duplicates`: the files moved and the files left in place.

    Attributes
    ----------
    moved : list of (Path, Path)
        Each moved file as ``(source, destination)``.
    skipped : list of (str, str)
        Each file left in place as ``(relative path, reason)``.
    undo_script : Path or None
        Shell script that moves the files back; None when nothing moved.
    """

    moved: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    undo_script: Path | None = None


def move_duplicates(report, input_dir, move_to) -> QuarantineResult:
    """Move every file of ``report`` that is not kept into ``move_to``.

    A file is moved only if it still has the content that was compared,
    and never onto an existing file: both cases are skipped and listed.

    Parameters
    ----------
    report : DuplicateReport
        From :func:`eclu.duplicates.find_duplicates`.
    input_dir : path-like
        The folder the report's paths are relative to.
    move_to : path-like
        Quarantine folder; ``a/b.jpg`` goes to ``move_to/a/b.jpg``.

    Returns
    -------
    QuarantineResult

    Raises
    ------
    ValueError
        If ``move_to`` is ``input_dir`` itself.
    """
    input_dir = Path(input_dir)
    move_to = Path(move_to)
    if move_to.resolve() == input_dir.resolve():
        raise ValueError(f"the quarantine folder {move_to} is the input folder; choose another folder")
    if move_to.resolve().is_relative_to(input_dir.resolve()):
        logger.warning(
            "Quarantine folder %s is inside %s, so a later scan of that folder finds the moved files; "
            "a folder whose name starts with a dot is not scanned",
            move_to,
            input_dir,
        )
    result = QuarantineResult()
    for group in report.groups:
        for member in group.duplicates:
            source = input_dir / member.path
            destination = move_to / member.path
            reason = _reason_to_skip(source, destination, member.sha256)
            if reason:
                logger.warning("Not moving %s: %s", source, reason)
                result.skipped.append((member.path, reason))
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, destination)
            result.moved.append((source, destination))
    if result.moved:
        result.undo_script = _write_undo_script(move_to, result.moved)
        logger.info(
            "Moved %d duplicates into %s; %s moves them back", len(result.moved), move_to, result.undo_script
        )
    return result


def _reason_to_skip(source: Path, destination: Path, sha256: str) -> str:
    if destination.exists() or destination.is_symlink():
        return f"{destination} exists already"
    data, failure = read_file(source)
    if failure is not None:
        return failure.reason
    if sha256 and file_sha256(data) != sha256:
        return "the file changed since it was compared; run the duplicate search again"
    return ""


def _write_undo_script(move_to: Path, moved) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    script = move_to / f"undo-moves-{stamp}.sh"
    suffix = 1
    while script.exists():
        script = move_to / f"undo-moves-{stamp}-{suffix}.sh"
        suffix += 1
    lines = [
        "#!/bin/sh",
        "# Moves the files that `eclu duplicates --move-to` quarantined back to where they were.",
        "# mv -n never overwrites a file that has appeared at the old place since.",
        "status=0",
    ]
    for source, destination in moved:
        original = shlex.quote(str(Path(source).absolute()))
        parent = shlex.quote(str(Path(source).absolute().parent))
        quarantined = shlex.quote(str(Path(destination).absolute()))
        lines.append(f"mkdir -p -- {parent} && mv -n -- {quarantined} {original} || status=1")
    lines.append("exit $status")
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(script, 0o755)
    return script
