"""Find the App in a user's module, and a raw handler from ``MOD:FUNC``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..app import App
from ..errors import ConfigurationError


def import_module(target: str) -> ModuleType:
    """Import a dotted module name or a path to a ``.py`` file (its folder joins ``sys.path``)."""
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise ConfigurationError(f"no such file: {target}")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        target = path.stem
    elif "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the current directory's modules are importable
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise ConfigurationError(f"cannot import {target!r}: no module named {exc.name!r}") from None
        raise ConfigurationError(f"cannot import {target!r}: {exc}") from None
    except Exception as exc:
        raise ConfigurationError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None


def find_app(module: ModuleType) -> App:
    """The module's App; an error unless there is exactly one."""
    apps = {id(v): v for v in vars(module).values() if isinstance(v, App)}
    if len(apps) != 1:
        found = "no fairq.App" if not apps else f"{len(apps)} fairq.App objects"
        raise ConfigurationError(f"module {module.__name__!r} defines {found}; expected exactly one")
    return next(iter(apps.values()))


def load_app(target: str) -> App:
    return find_app(import_module(target))


def load_callable(spec: str) -> Callable[..., Any]:
    """Resolve ``module:function`` (module may be dotted or a .py path)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"expected MODULE:FUNCTION, got {spec!r}")
    obj: Any = import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"{module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ConfigurationError(f"{spec!r} is not callable")
    return obj
