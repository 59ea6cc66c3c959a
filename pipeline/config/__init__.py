"""Camera and rule configuration: YAML validated by pydantic, errors pointing at the field and its line."""

from .load import ConfigError, load_config, parse_config
from .models import (
    CameraConfig,
    EvidenceConfig,
    Fixture,
    GarbageRule,
    GateConfig,
    IncidentConfig,
    ParkingRule,
    PatrolConfig,
    RulesConfig,
    Schedule,
    SlicingConfig,
    StaticConfig,
    StreetOrderConfig,
    TimeWindow,
    TrackingConfig,
    VendingRule,
    ZoneConfig,
    ZoneKind,
)
from .source import ConfigSource

__all__ = [
    "CameraConfig", "ConfigError", "ConfigSource", "EvidenceConfig", "Fixture", "GarbageRule", "GateConfig", "IncidentConfig", "ParkingRule", "PatrolConfig",
    "RulesConfig", "Schedule", "SlicingConfig", "StaticConfig", "StreetOrderConfig", "TimeWindow", "TrackingConfig", "VendingRule", "ZoneConfig", "ZoneKind",
    "load_config", "parse_config",
]
