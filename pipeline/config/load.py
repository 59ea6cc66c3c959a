"""Load the YAML config; a bad one gets an error naming the field, the file and the line.

Reviewer-added fixtures live in a separate machine-written file (`fixtures_file`), merged in at load time, so
the hand-written config (and its comments) is never rewritten.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from .models import CameraConfig, Fixture, StreetOrderConfig


class ConfigError(ValueError):
    """An invalid config; `str()` lists every problem as 'file:line: field.path: message'."""


class UnknownCamera(ConfigError, LookupError):
    """A camera id the config does not have."""


class FixtureConflict(ConfigError):
    """Fixtures that clash with the config as it is: an id already taken, or no fixtures file to add them to."""


class UnknownFixture(ConfigError, LookupError):
    """A fixture id the camera does not have."""


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Follow a pydantic error location through the YAML node tree; return the deepest line found (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            match = node.value[part]
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> StreetOrderConfig:
    """Validate YAML text. `base_dir` resolves a relative `fixtures_file`."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping (cameras:, rules:, ...), got {type(data).__name__}")
    try:
        config = StreetOrderConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            line = _line_of(root, loc)
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}:{line or '?'}: {_dotted(loc)}: {msg}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None
    if config.fixtures_file is not None:
        path = config.fixtures_file if config.fixtures_file.is_absolute() or base_dir is None else base_dir / config.fixtures_file
        config = merge_fixtures(config.model_copy(update={"fixtures_file": path}), path)
    return config


def load_config(path: str | Path) -> StreetOrderConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_config(text, str(path), base_dir=path.parent)


def read_fixtures(path: Path) -> dict[str, list[Fixture]]:
    """The fixtures file: `{camera_id: [fixture, ...]}`; missing means none yet."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must map camera ids to lists of fixtures")
        return {str(cam): [Fixture.model_validate(f) for f in (items or [])] for cam, items in data.items()}
    except (yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"{path}: invalid fixtures file: {e}") from None


def merge_fixtures(config: StreetOrderConfig, path: Path) -> StreetOrderConfig:
    extra = read_fixtures(path)
    known = {c.id for c in config.cameras}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(f"{path}: fixtures for unknown camera(s) {unknown}")
    cameras = []
    for cam in config.cameras:
        added = extra.get(cam.id, [])
        taken = {f.id for f in cam.fixtures}
        clash = [f.id for f in added if f.id in taken]
        if clash:
            raise ConfigError(f"{path}: camera '{cam.id}' already has fixture id(s) {clash}")
        try:
            cameras.append(with_fixtures(cam, added))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return config.model_copy(update={"cameras": tuple(cameras)})


def with_fixtures(camera: CameraConfig, fixtures: list[Fixture]) -> CameraConfig:
    """The camera with `fixtures` added, validated as a hand-written one (a box outside the frame is an error):
    the one check every fixture passes, from the file, the API or the review page."""
    try:
        return type(camera).model_validate({**camera.model_dump(), "fixtures": [*camera.fixtures, *fixtures]})
    except ValidationError as e:
        raise ConfigError(f"camera '{camera.id}': " + "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())) from None


def add_fixtures(config: StreetOrderConfig, camera_id: str, fixtures: list[Fixture], *, check_only: bool = False) -> list[Fixture]:
    """Validate fixtures against the camera, then append them to the config's fixtures file (unless `check_only`).

    Checked first, because a box outside the frame written to the file would make every later load fail.
    """
    try:
        camera = config.camera(camera_id)
    except KeyError as e:
        raise UnknownCamera(e.args[0]) from None
    if config.fixtures_file is None:
        raise FixtureConflict("the camera config has no fixtures_file, so fixtures cannot be added at run time; add e.g. `fixtures_file: fixtures.yaml` to it")
    taken = sorted({f.id for f in camera.fixtures} & {f.id for f in fixtures})
    if taken:
        raise FixtureConflict(f"camera '{camera_id}' already has fixture(s) {taken}")
    for f in fixtures:
        twin = next((g for g in camera.fixtures if _same_spot(f, g)), None)
        if twin is not None:
            raise FixtureConflict(f"camera '{camera_id}' already has fixture '{twin.id}' with this box and classes; edit it instead (PUT .../fixtures/{twin.id})")
    with_fixtures(camera, fixtures)
    if not check_only:
        for f in fixtures:
            add_fixture(config.fixtures_file, camera_id, f)
    return fixtures


def add_fixture(path: Path, camera_id: str, fixture: Fixture) -> None:
    """Append a reviewer's fixture to the fixtures file (atomic replace)."""
    data = read_fixtures(path)
    entries = data.setdefault(camera_id, [])
    if any(f.id == fixture.id for f in entries):
        raise FixtureConflict(f"{path}: camera '{camera_id}' already has fixture '{fixture.id}'")
    entries.append(fixture)
    _write_fixtures(path, data)


def _same_spot(a: Fixture, b: Fixture) -> bool:
    """Two fixtures that suppress exactly the same thing (what a retried or fuzzed POST would add twice)."""
    return (a.box, a.coords, a.classes and sorted(a.classes), a.min_iou) == (b.box, b.coords, b.classes and sorted(b.classes), b.min_iou)


def _write_fixtures(path: Path, data: dict[str, list[Fixture]]) -> None:
    """The whole fixtures file, replaced atomically (a reader sees the old file or the new one)."""
    out = {cam: [f.model_dump(mode="json", exclude_defaults=True) for f in fs] for cam, fs in data.items() if fs}
    tmp = path.with_suffix(path.suffix + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(yaml.safe_dump(out, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def _file_fixture(config: StreetOrderConfig, camera_id: str, fixture_id: str) -> tuple[CameraConfig, dict[str, list[Fixture]]]:
    """The camera and the fixtures file's content, once `fixture_id` is known to be one the file holds (the
    hand-written config's fixtures are edited in the config, never by the service)."""
    try:
        camera = config.camera(camera_id)
    except KeyError as e:
        raise UnknownCamera(e.args[0]) from None
    if not any(f.id == fixture_id for f in camera.fixtures):
        raise UnknownFixture(f"camera '{camera_id}' has no fixture '{fixture_id}'")
    data = read_fixtures(config.fixtures_file) if config.fixtures_file is not None else {}
    if not any(f.id == fixture_id for f in data.get(camera_id, [])):
        raise FixtureConflict(f"fixture '{fixture_id}' of camera '{camera_id}' is in the hand-written config; change it there, not through the service")
    return camera, data


def update_fixture(config: StreetOrderConfig, camera_id: str, fixture: Fixture) -> Fixture:
    """Replace the fixtures file's fixture of the same id (the id never changes), validated like a new one."""
    camera, data = _file_fixture(config, camera_id, fixture.id)
    others = [f for f in camera.fixtures if f.id != fixture.id]
    twin = next((g for g in others if _same_spot(fixture, g)), None)
    if twin is not None:
        raise FixtureConflict(f"camera '{camera_id}' already has fixture '{twin.id}' with this box and classes")
    with_fixtures(camera.model_copy(update={"fixtures": tuple(others)}), [fixture])
    data[camera_id] = [fixture if f.id == fixture.id else f for f in data[camera_id]]
    _write_fixtures(config.fixtures_file, data)
    return fixture


def remove_fixture(config: StreetOrderConfig, camera_id: str, fixture_id: str) -> Fixture:
    """Take a fixture out of the fixtures file; the camera raises its spot again from the next frame."""
    _, data = _file_fixture(config, camera_id, fixture_id)
    gone = next(f for f in data[camera_id] if f.id == fixture_id)
    data[camera_id] = [f for f in data[camera_id] if f.id != fixture_id]
    _write_fixtures(config.fixtures_file, data)
    return gone
