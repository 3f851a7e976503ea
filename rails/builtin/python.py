"""The ``python`` rail: your own class, loaded by import path.

```yaml
rails:
  config:
    tone: {type: python, class: "my_rails.tone:ToneRail", options: {max_caps: 0.5}}
```

The class is imported when the config is validated and built as ``ToneRail(**options)``
at start-up; it must have ``async def check(self, text, ctx) -> Verdict`` (see
``rails.base``). A module that does not import, a missing attribute, a class without an
async ``check`` or a constructor that rejects ``options`` is a config error naming the
value. Exceptions raised by ``check`` reach the pipeline like any rail's.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Annotated, Any, ClassVar, Protocol

from pydantic import AfterValidator, ConfigDict, Field

from rails.base import CheckContext, RailConfig, Verdict
from rails.resources import Resources


class UserRail(Protocol):
    """What the user's object must offer; the answer is verified to be a ``Verdict``."""

    async def check(self, text: str, ctx: CheckContext) -> object: ...


def load_class(path: str) -> type[Any]:
    """Resolve ``"package.module:ClassName"``; raise ValueError naming ``path`` otherwise."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not of the form 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    # Importing user code may fail in any way; at start-up every failure is a config error.
    except Exception as exc:
        raise ValueError(f"cannot import {module_name!r} for {path!r}: {exc!r}") from exc
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, None)
    if not inspect.isclass(found):
        raise ValueError(f"{path!r}: module {module_name!r} has no class {attr!r}")
    if not inspect.iscoroutinefunction(getattr(found, "check", None)):
        raise ValueError(f"{path!r} has no 'async def check(self, text, ctx)'")
    return found


def _loadable(path: str) -> str:
    load_class(path)
    return path


class PythonConfig(RailConfig):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    class_: Annotated[str, AfterValidator(_loadable)] = Field(alias="class")
    options: dict[str, Any] = Field(default_factory=dict)


class PythonRail:
    """Wraps the user's object; ``check`` returns its verdict, or raises TypeError if the
    object answered something other than a ``Verdict``."""

    type_name: ClassVar[str] = "python"
    Config: ClassVar[type[RailConfig]] = PythonConfig

    def __init__(self, name: str, config: PythonConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        cls = load_class(config.class_)
        try:
            self._impl: UserRail = cls(**config.options)
        # The user's constructor may fail in any way; at start-up that is a config error.
        except Exception as exc:
            raise ValueError(f"{config.class_}(**options) failed: {exc!r}") from exc

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        verdict = await self._impl.check(text, ctx)
        if not isinstance(verdict, Verdict):
            kind = type(verdict).__name__
            raise TypeError(f"python rail {self.name!r}: check returned {kind}, not Verdict")
        return verdict
