"""Text on the HTML pages shown as it is: invisible characters made visible.

Intake refuses bidi controls and zero-width characters in place fields (`pipeline.domain.PlaceText`), but a
ledger may hold text from before that, or from a path that does not check (a hand-edited config, an import). A
right-to-left override would turn the rest of the line around and a zero-width space would make two names that
look the same differ, so every value the templates print has them written out (`⟨U+202E⟩`) after escaping.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from pipeline.domain import PLACE_TEXT_PATTERN

# what a place field may not hold, minus tab and line breaks (harmless in HTML, and kept in free-text notes)
_HIDDEN = re.compile(PLACE_TEXT_PATTERN.replace("^[^", "[", 1).removesuffix("]*$") + "]")


def _shown(match: re.Match[str]) -> str:
    c = match.group()
    return c if c in "\t\n\r" else f"⟨U+{ord(c):04X}⟩"


def visible(value: Any) -> Any:
    """`value` with its invisible characters written out; anything but plain text (Markup, numbers) as is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _HIDDEN.sub(_shown, value)
    return value


def install(templates: Jinja2Templates) -> Jinja2Templates:
    """Every `{{ ... }}` of these templates goes through `visible` (before autoescape)."""
    templates.env.finalize = visible
    return templates
