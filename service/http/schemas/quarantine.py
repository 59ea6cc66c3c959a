"""/quarantine: incident reports the ledger refused, a page at a time like every list."""

from __future__ import annotations

from pipeline.db.quarantine import QuarantineView

from .common import Page


class QuarantineList(Page):
    reports: list[QuarantineView]
