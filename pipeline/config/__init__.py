"""Camera and rule configuration: YAML validated by pydantic, errors pointing at the field and its line."""

from .load import ConfigError, load_config, parse_config
from .models import (
    CameraConfig,
    EvidenceConfig,
    Fixture,
    GateConfig,
    IncidentConfig,
    PatrolConfig,
    RulesConfig,
    Schedule,
    SlicingConfig,
    StaticConfig,
    StreetOrderConfig,
    TimeWindow,
    TrackingConfig,
    ZoneConfig,
    ZoneKind,
    config_schema,
)
from .source import ConfigSource
from .streams import StreamConfig, StreamCredentialsError, redact

__all__ = [
    "CameraConfig", "ConfigError", "ConfigSource", "EvidenceConfig", "Fixture", "GateConfig", "IncidentConfig", "PatrolConfig",
    "RulesConfig", "Schedule", "SlicingConfig", "StaticConfig", "StreamConfig", "StreamCredentialsError", "StreetOrderConfig", "TimeWindow", "TrackingConfig", "ZoneConfig", "ZoneKind",
    "config_schema", "load_config", "parse_config", "redact",
]
