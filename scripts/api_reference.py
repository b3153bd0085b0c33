"""Write docs/api-reference.md from the docstrings of the public Python API.

Run it after changing a public name or its docstring (a test checks the file is
current): python scripts/api_reference.py
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "api-reference.md"


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _signature(name: str, fn: object) -> str:
    try:
        sig = str(inspect.signature(fn))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        sig = "(...)"
    return f"{name}{sig.replace('self, ', '').replace('(self)', '()')}"


def render() -> str:
    import tribes
    from tribes import api

    lines = ["# Python API reference", "",
             "Generated from the docstrings by `scripts/api_reference.py`; the guide with a",
             "worked example is docs/python-api.md.", ""]
    for name in api.__all__:
        obj = getattr(tribes, name)
        if inspect.isclass(obj):
            lines += [f"## `tribes.{name}`", "", _doc(obj), ""]
            for meth, fn in inspect.getmembers(obj):
                if meth.startswith("_") or not (inspect.isfunction(fn)
                                                or isinstance(fn, property)):
                    continue
                target = fn.fget if isinstance(fn, property) else fn
                shown = meth if isinstance(fn, property) else _signature(meth, fn)
                lines += [f"### `{name}.{shown}`", "", _doc(target) or "(no description)", ""]
        else:
            lines += [f"## `{_signature('tribes.' + name, obj)}`", "", _doc(obj), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote docs/{OUT.name}\n")
