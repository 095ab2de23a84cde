"""The latest RF survey at each position, so a job's HAN evidence can quote it.

Probe outcomes side of the flow: surveys come in from the CLI, the installer's prompt or an
MQTT request; a job whose device failed to join looks up the latest survey taken at that
device's position, of the same hub, and not older than ``survey.max_age_s``. A position is a
device's EUI-64 (label form, so ``00-db-...`` and ``00-DB-...`` are one place) or a free
label such as ``at_gas_meter``. With ``survey.store_dir`` set, surveys are also kept as
JSON files, written atomically, so ``gatewayd survey`` and a later ``gatewayd probe`` share
them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from gatewayd.private_files import make_private_dir, private_opener
from gatewayd.survey.judgement import SurveyDocument
from gatewayd_drivers.commshub.eui64 import Eui64

__all__ = ["POSITION_HELP", "SurveyStore", "position_key"]

_log = logging.getLogger(__name__)
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
POSITION_HELP = (
    "a device's EUI-64 in label form (e.g. 00-DB-12-34-56-78-90-A2) or a label of 1 to 40 "
    "characters from A-Z, a-z, 0-9, '_' and '-' (e.g. at_gas_meter)"
)


def position_key(text: str) -> str:
    """The canonical form of a position; ``ValueError`` saying what a position may be."""
    try:
        return str(Eui64.parse(text))
    except ValueError:
        pass
    if not _LABEL.match(text):
        raise ValueError(f"{text!r} is not a position: use {POSITION_HELP}")
    return text


class SurveyStore:
    """Latest survey per position, in memory and optionally in ``directory``."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._latest: dict[str, SurveyDocument] = {}

    def record(self, doc: SurveyDocument) -> None:
        if doc.position is None:
            return
        key = position_key(doc.position)
        old = self._latest.get(key) or self._load(key)
        if old is not None and old.taken_at > doc.taken_at:
            return
        self._latest[key] = doc
        if self.directory is not None:
            self._write(key, doc)

    def latest(
        self,
        position: str,
        *,
        hub_eui: Eui64 | None,
        now: datetime,
        max_age_s: float,
    ) -> SurveyDocument | None:
        """The latest usable survey at ``position`` (same hub, young enough), or None."""
        key = position_key(position)
        doc = self._latest.get(key) or self._load(key)
        if doc is None:
            return None
        if hub_eui is not None and doc.hub_eui64 != str(hub_eui):
            return None
        age = (now - doc.taken_at).total_seconds()
        if age > max_age_s or age < -60:
            return None
        return doc

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"survey-{key}.json"

    def _load(self, key: str) -> SurveyDocument | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            doc = SurveyDocument.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValidationError, ValueError) as exc:
            _log.warning("ignoring an unreadable stored survey path=%s error=%s", path, exc)
            return None
        self._latest[key] = doc
        return doc

    def _write(self, key: str, doc: SurveyDocument) -> None:
        assert self.directory is not None
        # Private like the rest of the kit's state (it often lives in the state directory).
        make_private_dir(self.directory)
        path = self._path(key)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", opener=private_opener) as fh:
            fh.write(json.dumps(doc.model_dump(mode="json"), indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
