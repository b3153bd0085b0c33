"""Finding input files: paths, globs and directories, and telling their format."""

from __future__ import annotations

import glob
from pathlib import Path

from tribes.errors import InputError

FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".psv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}


COMPRESSED = (".gz", ".gzip", ".zst", ".zstd")


def file_format(path: Path) -> str | None:
    """``csv``, ``parquet`` or ``jsonl`` from the file name (``.gz``, ``.zst`` looked
    through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1]) if suffixes else None


def resolve_inputs(items: list[str], fmt: str | None = None) -> tuple[list[Path], str]:
    """Expand paths, globs and directories into a sorted list of files of one format.

    Raises
    ------
    InputError
        Nothing matched, a file is unreadable, or the files mix formats.
    """
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and file_format(q))
            if not found:
                raise InputError(f"directory '{item}' holds no csv, parquet or jsonl files",
                                 code="E_NO_INPUT")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif any(ch in item for ch in "*?["):
            matched = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matched:
                raise InputError(f"no file matches '{item}'", code="E_NO_INPUT")
            files.extend(matched)
        else:
            raise InputError(f"input '{item}' does not exist", code="E_NO_INPUT")
    if not files:
        raise InputError("no input files given", code="E_NO_INPUT")
    unique = list(dict.fromkeys(map(_real_path, files)))
    formats = {fmt or file_format(f) for f in unique}
    if None in formats:
        unknown = next(f for f in unique if not (fmt or file_format(f)))
        raise InputError(
            f"cannot tell the format of '{unknown.name}'; name it .csv, .parquet or .jsonl "
            "(optionally .gz or .zst) or pass --format",
            code="E_FORMAT",
        )
    if len(formats) > 1:
        raise InputError(
            f"the inputs mix formats ({', '.join(sorted(str(f) for f in formats))}); "
            "ingest each format separately",
            code="E_FORMAT",
        )
    for f in unique:
        if f.stat().st_size == 0:
            raise InputError(f"'{f.name}' is empty", code="E_EMPTY")
    return unique, formats.pop() or "csv"


def _real_path(f: Path) -> Path:
    """The file's path with links resolved; a link to a file without a name (a file in
    memory, see ``engine.staging.staged_text``) is read through the link."""
    real = f.resolve()
    return real if real.exists() else f.absolute()
