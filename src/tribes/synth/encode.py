"""Vectorised encoders: hashed ids, fixed-width strings and timestamp text.

Everything here turns NumPy integer arrays into Arrow string arrays without a
Python-level loop over rows.  Fixed-width values (ids, ISO timestamps, epoch
milliseconds) are assembled as ``uint8`` character matrices and handed to Arrow
zero-copy; variable-width vocabularies are expanded with ``take``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

__all__ = [
    "Vocab",
    "build_vocab",
    "digits",
    "fixed_strings",
    "hex64",
    "mix64",
    "pick",
    "take_strings",
    "text_date",
    "text_dmy_hm",
    "text_epoch_ms",
    "text_iso_offset",
    "text_iso_z",
]

I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def mix64(x: NDArray[np.uint64] | I64, salt: int = 0) -> NDArray[np.uint64]:
    """Bijective 64-bit mixer (SplitMix64 finaliser) with an additive salt.

    Parameters
    ----------
    x : ndarray of int64 or uint64
        Keys to scramble; distinct keys give distinct outputs.
    salt : int, optional
        Mixed into every key so that different id kinds and seeds differ.

    Returns
    -------
    ndarray of uint64
        Pseudo-random, collision-free image of ``x``.
    """
    z = x.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
    z = z + _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


def hex64(x: NDArray[np.uint64]) -> U8:
    """Render unsigned 64-bit integers as 16 lowercase hex characters.

    Parameters
    ----------
    x : ndarray of uint64
        Values to render.

    Returns
    -------
    ndarray of uint8, shape (n, 16)
        ASCII character matrix.
    """
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    nib = (x[:, None] >> shifts) & np.uint64(0xF)
    return _HEX[nib.astype(np.intp)]


def digits(values: I64, width: int) -> U8:
    """Render non-negative integers as zero-padded decimal characters.

    Parameters
    ----------
    values : ndarray of int64
        Non-negative values below ``10 ** width``.
    width : int
        Number of characters.

    Returns
    -------
    ndarray of uint8, shape (n, width)
        ASCII character matrix.
    """
    pows = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // pows) % 10 + 48).astype(np.uint8)


def _const(text: str, n: int) -> U8:
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.broadcast_to(raw, (n, raw.size))


def _hstack(n: int, parts: Sequence[U8 | str]) -> U8:
    mats = [_const(p, n) if isinstance(p, str) else p for p in parts]
    return np.ascontiguousarray(np.hstack(mats), dtype=np.uint8)


def fixed_strings(n: int, parts: Sequence[U8 | str]) -> pa.StringArray:
    """Concatenate constant text and character matrices into an Arrow array.

    Parameters
    ----------
    n : int
        Number of rows.
    parts : sequence of str or ndarray of uint8
        Constant ASCII text (broadcast to every row) or ``(n, k)`` matrices.

    Returns
    -------
    pyarrow.StringArray
        ``n`` strings of identical width.
    """
    mat = _hstack(n, parts) if parts else np.zeros((n, 0), dtype=np.uint8)
    width = mat.shape[1]
    offsets = np.arange(n + 1, dtype=np.int64) * width
    if offsets[-1] < 2**31 - 1:
        return pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(mat)
        )
    big = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(mat))
    return big.cast(pa.string())


def _civil(days: I64) -> tuple[I64, I64, I64]:
    """Convert days since 1970-01-01 to (year, month, day), proleptic Gregorian."""
    z = days + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _parts(epoch_s: I64) -> tuple[I64, I64, I64, I64, I64, I64]:
    days = np.floor_divide(epoch_s, 86400)
    sod = epoch_s - days * 86400
    y, mo, d = _civil(days)
    return y, mo, d, sod // 3600, (sod // 60) % 60, sod % 60


def _iso_datetime(epoch_s: I64) -> list[U8 | str]:
    """Character parts of ``YYYY-MM-DDTHH:MM:SS`` (no zone) for :func:`fixed_strings`."""
    y, mo, d, h, mi, s = _parts(epoch_s)
    return [digits(y, 4), "-", digits(mo, 2), "-", digits(d, 2), "T",
            digits(h, 2), ":", digits(mi, 2), ":", digits(s, 2)]


def text_iso_z(epoch_s: I64) -> pa.StringArray:
    """Format epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``.

    Parameters
    ----------
    epoch_s : ndarray of int64
        Seconds since the Unix epoch (UTC).

    Returns
    -------
    pyarrow.StringArray
        ISO-8601 UTC text.
    """
    return fixed_strings(len(epoch_s), [*_iso_datetime(epoch_s), "Z"])


def text_iso_offset(epoch_s: I64, offset_min: I64) -> pa.StringArray:
    """Format epoch seconds as local time with a UTC offset (same instant).

    Parameters
    ----------
    epoch_s : ndarray of int64
        Seconds since the Unix epoch (UTC).
    offset_min : ndarray of int64
        Offset from UTC in minutes, e.g. ``120`` renders ``+02:00``.

    Returns
    -------
    pyarrow.StringArray
        Text like ``2026-03-04T12:15:02+02:00``.
    """
    sign = np.where(offset_min < 0, ord("-"), ord("+")).astype(np.uint8)[:, None]
    mag = np.abs(offset_min)
    return fixed_strings(
        len(epoch_s),
        [*_iso_datetime(epoch_s + offset_min * 60),
         sign, digits(mag // 60, 2), ":", digits(mag % 60, 2)],
    )


def text_epoch_ms(epoch_ms: I64) -> pa.StringArray:
    """Format epoch milliseconds as 13 decimal digits.

    Parameters
    ----------
    epoch_ms : ndarray of int64
        Milliseconds since the Unix epoch (between 2001 and 2286).

    Returns
    -------
    pyarrow.StringArray
        Digit strings such as ``1772619302000``.
    """
    return fixed_strings(len(epoch_ms), [digits(epoch_ms, 13)])


def text_dmy_hm(epoch_s: I64) -> pa.StringArray:
    """Format epoch seconds as ``%d/%m/%Y %H:%M`` (day first).

    Parameters
    ----------
    epoch_s : ndarray of int64
        Seconds since the Unix epoch (UTC).

    Returns
    -------
    pyarrow.StringArray
        Text like ``04/03/2026 10:15``.
    """
    y, mo, d, h, mi, _ = _parts(epoch_s)
    return fixed_strings(
        len(epoch_s),
        [digits(d, 2), "/", digits(mo, 2), "/", digits(y, 4), " ",
         digits(h, 2), ":", digits(mi, 2)],
    )


def text_date(epoch_s: I64) -> pa.StringArray:
    """Format epoch seconds as an ISO date ``YYYY-MM-DD``.

    Parameters
    ----------
    epoch_s : ndarray of int64
        Seconds since the Unix epoch (UTC).

    Returns
    -------
    pyarrow.StringArray
        ISO dates.
    """
    y, mo, d, _, _, _ = _parts(epoch_s)
    return fixed_strings(len(epoch_s), [digits(y, 4), "-", digits(mo, 2), "-", digits(d, 2)])


@dataclass(frozen=True)
class Vocab:
    """Spelling variants for a set of canonical codes.

    Attributes
    ----------
    values : pyarrow.StringArray
        All variant spellings, grouped by code.
    offsets : ndarray of int64
        Position of each code's first variant in ``values``.
    cum : ndarray of float64, shape (n_codes, max_variants - 1)
        Cumulative variant probabilities (padded with 2.0).
    """

    values: pa.StringArray
    offsets: I64
    cum: NDArray[np.float64]


def build_vocab(variants: Sequence[Sequence[tuple[str, float]]]) -> Vocab:
    """Build a :class:`Vocab` from ``[(spelling, weight), ...]`` per code.

    Parameters
    ----------
    variants : sequence of sequence of (str, float)
        For each canonical code, its spellings and relative weights.

    Returns
    -------
    Vocab
        Lookup structure for :func:`pick`.
    """
    flat: list[str] = []
    offsets: list[int] = []
    width = max(len(v) for v in variants)
    cum = np.full((len(variants), max(width - 1, 1)), 2.0)
    for code, opts in enumerate(variants):
        offsets.append(len(flat))
        flat.extend(s for s, _ in opts)
        w = np.array([p for _, p in opts], dtype=np.float64)
        c = np.cumsum(w / w.sum())[:-1]
        cum[code, : c.size] = c
    return Vocab(pa.array(flat, type=pa.string()), np.array(offsets, dtype=np.int64), cum)


def pick(vocab: Vocab, codes: I64, rng: np.random.Generator) -> I64:
    """Choose a random spelling for each code.

    Parameters
    ----------
    vocab : Vocab
        Variant table.
    codes : ndarray of int64
        Canonical codes; negative values mean "missing" and stay ``-1``.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    ndarray of int64
        Indices into ``vocab.values`` (``-1`` for missing).
    """
    u = rng.random(len(codes))
    safe = np.maximum(codes, 0)
    j = (u[:, None] >= vocab.cum[safe]).sum(axis=1)
    return np.where(codes < 0, -1, vocab.offsets[safe] + j)


def take_strings(values: pa.Array, idx: I64) -> pa.Array:
    """Gather strings by index; negative indices become nulls.

    Parameters
    ----------
    values : pyarrow.Array
        Source strings.
    idx : ndarray of int64
        Indices into ``values`` or ``-1`` for null.

    Returns
    -------
    pyarrow.Array
        Gathered strings.
    """
    if not (idx < 0).any():
        return values.take(pa.array(idx))
    with_null = pa.concat_arrays([values, pa.nulls(1, values.type)])
    return with_null.take(pa.array(np.where(idx < 0, len(values), idx)))
