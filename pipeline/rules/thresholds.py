"""What every rule's thresholds have, and a zone's override of them.

Each rule module subclasses `RuleThresholds` with its own fields (its classes, its severity steps) and declares
it with `@rule(..., thresholds=...)`; `config.RulesConfig` is composed from those declarations, so the YAML
section of a rule is validated and documented by the rule's own model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RuleThresholds(BaseModel):
    """The thresholds every rule reads; a rule module adds its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, title="Enabled")
    min_dwell_s: float = Field(ge=0, title="Minimum dwell (s)", description="How long the evidence must stay put before it is a violation")
    min_score: float = Field(0.35, ge=0, le=1, title="Minimum score", description="Detector score below which evidence is ignored")
    min_area: float = Field(0.0, ge=0, le=1, title="Minimum area", description="Smallest evidence box, as a share of the frame area")
    min_count: int = Field(1, ge=1, title="Minimum count", description="Stationary objects needed at once")

    def evidence_classes(self) -> tuple[str, ...]:
        """Classes that are the violation itself: what presence checks look for and a fixture suppresses."""
        return tuple(getattr(self, "classes", ()))

    def used_classes(self) -> tuple[str, ...]:
        """Every class the rule reads: its evidence plus context (a vendor beside a stall, a person carrying a bag)."""
        return self.evidence_classes()


class RuleOverride(BaseModel):
    """Per-zone thresholds that replace the rule's defaults (per-zone dwell without duplicating zones)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_dwell_s: float | None = Field(None, ge=0, title="Minimum dwell (s)")
    min_count: int | None = Field(None, ge=1, title="Minimum count")
    min_score: float | None = Field(None, ge=0, le=1, title="Minimum score")
    min_area: float | None = Field(None, ge=0, le=1, title="Minimum area", description="Share of the frame area")
