#!/usr/bin/env python3
"""Training images for rsstyle's trainer, made from Debian packages.

`scripts/fetch-training-data.sh` downloads the packages and runs `build` below, which writes

    OUT/content/train/*.jpg         content photos the trainer learns from
    OUT/content/heldout/*.jpg       content photos kept out of training (never in train/)
    OUT/content/heldout-eval/*.jpg  a fixed, varied subset of heldout/ for evaluation tables
    OUT/styles/*                    public-domain paintings (style images)
    OUT/attribution.tsv             one row per image: source, licence, split
    OUT/ATTRIBUTION.md              the same, for people
    OUT/sources/                    the credit files (activity READMEs, Debian copyright files)

Content photos are scaled so that their shorter side is at most 768 px and stored as JPEG
(quality 95, no chroma subsampling); style images keep their size (PNG, or the source JPEG).

Formats read here:
- Qt binary resources (`.rcc`, `qresource.cpp`): a big-endian header `"qres"`, version, tree,
  data and names offsets; tree nodes of 14 bytes (version 1) or 22 bytes (2 and 3: + 8-byte
  modification time); names as UTF-16BE with a length and a hash; data as a 4-byte size and the
  bytes, `qCompress`ed (a 4-byte length and a zlib stream) when the node's flag 1 is set.
- GCompris boards (`boardN_0.qml`): a JSON-like `levels` list of `pixmapfile`, `x`, `y` (the
  piece's centre as a share of the canvas), and a canvas given either by a first entry with
  `width`/`height` (paintings) or by a `SHAPE_BACKGROUND_IMAGE` (babyshapes, details).
- Credit files: GCompris activity `README`s (`Copyright:`/`License:`/`Source:`/`Files:`
  paragraphs) and Debian machine-readable copyright files (DEP-5).

Only the standard library and Pillow are used.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import sys
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from pathlib import Path

try:
    from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit(
        "training_data: Pillow is not installed in this Python; "
        "run scripts/fetch-training-data.sh (it makes .deps/data-venv)"
    )

# Recipe version: bump when the output would change, so that the fetch script rebuilds.
RECIPE = 1

MAX_SHORT_SIDE = 768  # content photos are scaled down to this shorter side (px)
MIN_SHORT_SIDE = 180  # smaller photos are left out (they would be upscaled > 1.4x for 256 crops)
JPEG_QUALITY = 95
HELDOUT_SHARE = 0.12
ALPHA_OPAQUE = 127  # a piece's pixel is pasted where its alpha is above this


class DataError(Exception):
    """A package, archive or board is not what the recipe expects."""


# ---------------------------------------------------------------------------------------------
# Qt binary resources (.rcc)

RCC_COMPRESSED = 1
RCC_DIRECTORY = 2
RCC_COMPRESSED_ZSTD = 4


def qt_uncompress(blob: bytes) -> bytes:
    """Inverse of Qt's `qCompress`: a big-endian u32 length, then a zlib stream."""
    if len(blob) < 4:
        raise DataError(f"qCompress block of {len(blob)} bytes has no length header")
    (expected,) = struct.unpack_from(">I", blob, 0)
    try:
        out = zlib.decompress(blob[4:])
    except zlib.error as e:
        raise DataError(f"qCompress block does not inflate: {e}") from None
    if len(out) != expected:
        raise DataError(f"qCompress block inflates to {len(out)} bytes, header says {expected}")
    return out


def read_rcc(data: bytes, what: str = "archive") -> dict[str, bytes]:
    """All files of a Qt resource archive: `{"dir/sub/name": bytes}` (inflated).

    Raises `DataError` naming `what` for a bad magic, an unknown version, offsets outside the
    archive, a directory cycle or zstd-compressed entries (not used by the packages read here).
    """

    def need(off: int, n: int, part: str) -> None:
        if off < 0 or off + n > len(data):
            raise DataError(
                f"{what}: {part} at offset {off} (+{n}) is outside the {len(data)}-byte file"
            )

    need(0, 20, "header")
    magic, version, tree_off, data_off, names_off = struct.unpack_from(">4sIIII", data, 0)
    if magic != b"qres":
        raise DataError(f"{what}: not a Qt resource archive (magic {magic!r}, expected b'qres')")
    if version not in (1, 2, 3):
        raise DataError(f"{what}: unsupported resource format version {version} (1-3 known)")
    node_size = 14 if version == 1 else 22

    def name_at(off: int) -> str:
        need(names_off + off, 6, "name")
        (length,) = struct.unpack_from(">H", data, names_off + off)
        start = names_off + off + 6
        need(start, 2 * length, "name text")
        return data[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    seen: set[int] = set()

    def walk(index: int, prefix: str) -> None:
        if index in seen:
            raise DataError(f"{what}: tree node {index} is reached twice (corrupt tree)")
        seen.add(index)
        off = tree_off + index * node_size
        need(off, node_size, f"tree node {index}")
        name_off, flags = struct.unpack_from(">IH", data, off)
        path = f"{prefix}/{name_at(name_off)}" if index else ""
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", data, off + 6)
            for child in range(first, first + count):
                walk(child, path)
            return
        (data_rel,) = struct.unpack_from(">I", data, off + 10)
        need(data_off + data_rel, 4, f"data of {path}")
        (size,) = struct.unpack_from(">I", data, data_off + data_rel)
        start = data_off + data_rel + 4
        need(start, size, f"data of {path}")
        blob = data[start : start + size]
        if flags & RCC_COMPRESSED_ZSTD:
            raise DataError(
                f"{what}: {path} is zstd-compressed, which this reader does not support"
            )
        if flags & RCC_COMPRESSED:
            try:
                blob = qt_uncompress(blob)
            except DataError as e:
                raise DataError(f"{what}: {path}: {e}") from None
        files[path.lstrip("/")] = blob

    walk(0, "")
    return files


# ---------------------------------------------------------------------------------------------
# Credits: GCompris activity READMEs and Debian copyright files


@dataclass
class Credit:
    """One credit paragraph: the files it covers and its fields (empty when absent)."""

    files: list[str]
    copyright: str = ""
    license: str = ""
    source: str = ""
    comment: str = ""


_README_KEYS = {"copyright", "license", "source", "comment", "comments", "files"}
_FILE_RE = re.compile(
    r"^[\w.()',+-]+(/[\w.()',+-]+)*\.(webp|png|jpe?g|svg|svgz|gif|ogg|wav|mp3)$", re.I
)


def parse_readme_credits(text: str) -> list[Credit]:
    """Credit paragraphs of a GCompris activity README.

    Paragraphs are separated by blank lines; `Key: value` starts a field; lines that look like
    file names are files (with or without a `Files:` key before them); other lines continue the
    field before them.
    """
    credits = []
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        files: list[str] = []
        key = None
        for raw in para.split("\n"):
            line = raw.strip()
            if not line:
                continue
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m and m.group(1).lower() in _README_KEYS:
                key = {"comments": "comment"}.get(m.group(1).lower(), m.group(1).lower())
                value = m.group(2).strip()
                if key == "files":
                    files += [t for t in re.split(r"[\s,]+", value) if t]
                elif value:
                    fields[key] = value
                continue
            if _FILE_RE.match(line):
                files.append(line)
            elif key and key != "files":
                fields[key] = (fields.get(key, "") + " " + line).strip()
        if files:
            credits.append(
                Credit(
                    files=files,
                    copyright=fields.get("copyright", ""),
                    license=fields.get("license", ""),
                    source=fields.get("source", ""),
                    comment=fields.get("comment", ""),
                )
            )
    return credits


def parse_debian_copyright(text: str) -> list[Credit]:
    """The `Files:` paragraphs of a Debian machine-readable copyright file (DEP-5).

    `license` is the licence's short name (the first line of `License:`); `files` holds the
    glob patterns. Later paragraphs take precedence, as DEP-5 says.
    """
    credits = []
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        fields: dict[str, list[str]] = {}
        key = None
        for line in para.split("\n"):
            if line.startswith((" ", "\t")):
                if key:
                    fields[key].append(line.strip())
                continue
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                key = m.group(1).lower()
                fields[key] = [m.group(2).strip()]
        if "files" not in fields:
            continue
        patterns = " ".join(fields["files"]).split()
        lic = fields.get("license", [""])[0]
        copyright_ = "; ".join(s for s in fields.get("copyright", []) if s and s != ".")
        comment = " ".join(s for s in fields.get("comment", []) if s != ".")
        credits.append(Credit(files=patterns, copyright=copyright_, license=lic, comment=comment))
    return credits


def _one_edit_apart(a: str, b: str) -> bool:
    """True when `b` is `a` with one character replaced, inserted or deleted."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:k] + long_[k + 1 :] == short for k in range(len(long_)))


def find_readme_credit(
    rel_path: str, credits: list[Credit], present: set[str] = frozenset()
) -> tuple[Credit | None, str]:
    """The README credit naming `rel_path` (relative to the README's folder) and the name it
    uses: the same path, else the same base name (if only one credit has it), else a listed
    name one typing slip away (`audaPalatina.webp` for `aulaPalatina.webp`) that names no file
    in `present` and is the only such name."""
    for c in credits:
        if rel_path in c.files:
            return c, rel_path
    base = rel_path.rsplit("/", 1)[-1]
    by_base = [(c, f) for c in credits for f in c.files if f.rsplit("/", 1)[-1] == base]
    if len(by_base) == 1:
        return by_base[0]
    slips = [
        (c, f)
        for c in credits
        for f in c.files
        if f not in present and _one_edit_apart(f.rsplit("/", 1)[-1], base)
    ]
    if len(slips) == 1:
        return slips[0]
    return None, ""


def find_debian_credit(path: str, credits: list[Credit], specific: bool = False) -> Credit | None:
    """The last DEP-5 paragraph matching `path`. A pattern without wildcards also matches when
    it ends with `path` after a `/` (the copyright file names the upstream source tree, e.g.
    `16.04/x.jpg` for the installed `x.jpg`), with or without the extension (upstream renamed
    `x.jpg` to `x.webp`). With `specific`, the catch-all pattern `*` does not count."""
    found = None
    stem = os.path.splitext(path)[0]
    for c in credits:
        for pat in c.files:
            if specific and pat == "*":
                continue
            if fnmatch.fnmatchcase(path, pat):
                found = c
            elif not any(ch in pat for ch in "*?["):
                pat_stem = os.path.splitext(pat)[0]
                if pat.endswith("/" + path) or pat_stem == stem or pat_stem.endswith("/" + stem):
                    found = c
    return found


# ---------------------------------------------------------------------------------------------
# GCompris boards and their reassembly


@dataclass
class Piece:
    image: str  # path relative to the activity's resource folder
    x: float  # centre, share of the canvas width
    y: float  # centre, share of the canvas height


@dataclass
class Board:
    title: str
    width: int | None  # canvas size, when the board gives one
    height: int | None
    background: str | None  # a SHAPE_BACKGROUND_IMAGE, when the board has one
    pieces: list[Piece] = field(default_factory=list)


def parse_board(qml: str, what: str = "board") -> Board:
    """A GCompris board file: its title (`instruction`) and its canvas and pieces."""
    m = re.search(r'instruction\s*:\s*qsTr\("((?:[^"\\]|\\.)*)"\)', qml)
    title = m.group(1) if m else ""
    m = re.search(r"levels\s*:\s*\[", qml)
    if not m:
        raise DataError(f"{what}: no 'levels' list")
    entries = re.findall(r"\{([^{}]*)\}", qml[m.end() :])
    board = Board(title=title, width=None, height=None, background=None)
    for entry in entries:
        kv = dict(re.findall(r'"(\w+)"\s*:\s*"?([^",\n]*)"?', entry))
        pix = kv.get("pixmapfile")
        if pix is None:
            continue
        kind = kv.get("type", "")
        if "width" in kv and "height" in kv:
            board.width, board.height = int(float(kv["width"])), int(float(kv["height"]))
            continue
        if kind == "SHAPE_BACKGROUND_IMAGE":
            board.background = pix
            continue
        if kind:  # SHAPE_BACKGROUND outlines and other decorations
            continue
        try:
            board.pieces.append(Piece(pix, float(kv["x"]), float(kv["y"])))
        except (KeyError, ValueError):
            raise DataError(f"{what}: piece {pix} has no numeric x/y") from None
    if not board.pieces:
        raise DataError(f"{what}: no pieces")
    return board


@dataclass
class Reassembly:
    image: "Image.Image"  # RGB, cropped to `box`
    box: tuple[int, int, int, int]  # left, top, right, bottom on the canvas
    holes: int  # pixels inside `box` that no piece covers (filled from their neighbours)
    positions: list[tuple[int, int]]  # top-left of each piece, on the board's canvas
    mismatch: float  # mean absolute RGB difference (0-255) where pieces overlap
    overlap: int  # pixels where pieces overlap


PLACE_RADIUS = 3  # px: how far a piece may sit from where the board's rounded centre puts it
MATCH_TOLERANCE = 5.0  # mean |RGB difference| (0-255) below which overlapping pixels agree
HOLE_COST = 50.0  # energy of an uncovered pixel, in the units of an overlap pixel's mismatch
EDGE_TRIM = 4  # px: ragged outer edges trimmed off the covered box, at most, per side


def _opaque(im: "Image.Image") -> "Image.Image":
    """Mode-1 mask of the pixels with alpha above ALPHA_OPAQUE."""
    return im.getchannel("A").point(lambda a: 255 if a > ALPHA_OPAQUE else 0).convert("1")


class _Placement:
    """Integer positions for RGBA pieces whose top-left corners are known only roughly.

    The boards give centres rounded to 1/1000 of the canvas, and the pieces' images were cropped,
    so a piece can sit a pixel or two away from where its centre puts it. The pieces of a cut
    overlap by about a pixel along the cut, and where two pieces overlap they show the same
    painting. The energy of a placement is

        Σ over overlapping opaque pixels of (mean |RGB difference| − MATCH_TOLERANCE)
        + HOLE_COST · (uncovered pixels inside the trimmed covered box)

    so overlaps that agree lower it and overlaps that disagree and gaps raise it. It is lowered
    by moves, until none helps: a piece to any position within PLACE_RADIUS of its rounded
    nominal position, or all pieces right of / left of / below / above a piece's centre by one
    pixel (joint moves, so that a column or row can move while its seams stay aligned).
    """

    def __init__(
        self, pieces: list["Image.Image"], nominal: list[tuple[float, float]], fixed: set[int]
    ):
        self.n = len(pieces)
        self.rgb = [im.convert("RGB") for im in pieces]
        self.mask1 = [_opaque(im) for im in pieces]
        self.nominal = nominal
        self.fixed = fixed
        self.sizes = [im.size for im in pieces]
        slack = 2 * PLACE_RADIUS + 4
        self.shift = (
            slack - min(0, int(min(x for x, _ in nominal))),
            slack - min(0, int(min(y for _, y in nominal))),
        )
        self.width = (
            int(max(x + w for (x, _), (w, _) in zip(nominal, self.sizes))) + self.shift[0] + slack
        )
        self.height = (
            int(max(y + h for (_, y), (_, h) in zip(nominal, self.sizes))) + self.shift[1] + slack
        )
        self.neighbours = [
            [j for j in range(self.n) if j != i and self._near(i, j)] for i in range(self.n)
        ]
        self.memo: dict[tuple[int, int, int, int], tuple[float, int]] = {}
        centres = [(x + w / 2, y + h / 2) for (x, y), (w, h) in zip(nominal, self.sizes)]
        blocks = {frozenset([k]) for k in range(self.n)}
        for cx, cy in centres:
            for side in (
                {k for k, c in enumerate(centres) if c[0] > cx + 1},
                {k for k, c in enumerate(centres) if c[0] < cx - 1},
                {k for k, c in enumerate(centres) if c[1] > cy + 1},
                {k for k, c in enumerate(centres) if c[1] < cy - 1},
            ):
                if side and not side & fixed:
                    blocks.add(frozenset(side))
        self.blocks = sorted(blocks, key=lambda b: (len(b), sorted(b)))

    def _near(self, i: int, j: int) -> bool:
        (xi, yi), (wi, hi) = self.nominal[i], self.sizes[i]
        (xj, yj), (wj, hj) = self.nominal[j], self.sizes[j]
        m = 2 * PLACE_RADIUS + 2
        return xj < xi + wi + m and xi < xj + wj + m and yj < yi + hi + m and yi < yj + hj + m

    def pair(self, i: int, j: int, dx: int, dy: int) -> tuple[float, int]:
        """(Σ mean |RGB difference| per pixel, count) over pixels opaque in both pieces, j's
        top-left at (dx, dy) from i's."""
        key = (i, j, dx, dy)
        if key not in self.memo:
            (wi, hi), (wj, hj) = self.sizes[i], self.sizes[j]
            left, top, right, bottom = max(0, dx), max(0, dy), min(wi, dx + wj), min(hi, dy + hj)
            result = (0.0, 0)
            if right > left and bottom > top:
                box_i, box_j = (left, top, right, bottom), (
                    left - dx,
                    top - dy,
                    right - dx,
                    bottom - dy,
                )
                both = ImageChops.logical_and(self.mask1[i].crop(box_i), self.mask1[j].crop(box_j))
                count = both.histogram()[-1]
                if count:
                    diff = ImageChops.difference(self.rgb[i].crop(box_i), self.rgb[j].crop(box_j))
                    result = (sum(ImageStat.Stat(diff, both.convert("L")).sum) / 3, count)
            self.memo[key] = result
        return self.memo[key]

    def pair_energy(self, i: int, j: int, pos) -> float:
        total, count = self.pair(i, j, pos[j][0] - pos[i][0], pos[j][1] - pos[i][1])
        return total - MATCH_TOLERANCE * count

    def holes(self, pos) -> int:
        cov = Image.new("1", (self.width, self.height), 0)
        for k in range(self.n):
            cov.paste(1, (pos[k][0] + self.shift[0], pos[k][1] + self.shift[1]), self.mask1[k])
        cov = cov.convert("L")
        return cov.crop(_trimmed_box(cov, EDGE_TRIM)).histogram()[0]

    def energy(self, pos) -> float:
        match = sum(
            self.pair_energy(i, j, pos) for i in range(self.n) for j in self.neighbours[i] if j > i
        )
        return match + HOLE_COST * self.holes(pos)

    def deviation(self, pos) -> float:
        return sum(abs(px - x) + abs(py - y) for (px, py), (x, y) in zip(pos, self.nominal))

    def _moves(self, pos):
        r = PLACE_RADIUS
        for i in range(self.n):
            if i in self.fixed:
                continue
            nx, ny = round(self.nominal[i][0]), round(self.nominal[i][1])
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if (nx + dx, ny + dy) != pos[i]:
                        yield {i: (nx + dx, ny + dy)}
        for block in self.blocks:
            if len(block) < 2:
                continue
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
                moved = {k: (pos[k][0] + dx, pos[k][1] + dy) for k in block}
                if all(
                    abs(x - self.nominal[k][0]) <= r + 1 and abs(y - self.nominal[k][1]) <= r + 1
                    for k, (x, y) in moved.items()
                ):
                    yield moved

    def refine(self, pos):
        pos = list(pos)
        holes = self.holes(pos)
        for _ in range(20):
            improved = False
            for move in list(self._moves(pos)):
                trial = list(pos)
                for k, p in move.items():
                    trial[k] = p
                # Pairs inside the moved set keep their offsets; only those crossing it change.
                delta = sum(
                    self.pair_energy(k, j, trial) - self.pair_energy(k, j, pos)
                    for k in move
                    for j in self.neighbours[k]
                    if j not in move
                )
                if delta - HOLE_COST * holes >= -1e-6:
                    continue  # cannot help even if it closed every hole
                trial_holes = self.holes(trial)
                if delta + HOLE_COST * (trial_holes - holes) < -1e-6:
                    pos, holes, improved = trial, trial_holes, True
            if not improved:
                break
        return pos


def place_pieces(
    pieces: list["Image.Image"],
    nominal: list[tuple[float, float]],
    fixed: set[int] = frozenset({0}),
):
    """Integer top-left positions of `pieces` (RGBA) near `nominal` (see `_Placement`): the
    lowest-energy refinement of the rounded, floored and ceiled nominal positions.
    Returns (positions, the placement, for its pair statistics)."""
    placement = _Placement(pieces, nominal, set(fixed))
    results = []
    for start in (round, math.floor, math.ceil):
        pos = [
            (round(x), round(y)) if k in fixed else (start(x), start(y))
            for k, (x, y) in enumerate(nominal)
        ]
        pos = placement.refine(pos)
        results.append((placement.energy(pos), placement.deviation(pos), pos))
    _, _, best = min(results)
    return best, placement


def _trimmed_box(coverage: "Image.Image", most: int) -> tuple[int, int, int, int]:
    """The covered bounding box, less up to `most` outer rows/columns per side that still have
    uncovered pixels (pieces of a row need not end on the same line)."""
    box = coverage.getbbox()
    if box is None:
        return (0, 0, 0, 0)
    left, top, right, bottom = box

    def gaps(b):
        return coverage.crop(b).histogram()[0]

    for _ in range(most):
        if right - left > 1 and gaps((left, top, left + 1, bottom)):
            left += 1
    for _ in range(most):
        if right - left > 1 and gaps((right - 1, top, right, bottom)):
            right -= 1
    for _ in range(most):
        if bottom - top > 1 and gaps((left, top, right, top + 1)):
            top += 1
    for _ in range(most):
        if bottom - top > 1 and gaps((left, bottom - 1, right, bottom)):
            bottom -= 1
    return left, top, right, bottom


MAX_FILLED = 0.0005  # share of the box that may be uncovered and filled from its neighbours


def _fill_holes(canvas: "Image.Image", coverage: "Image.Image") -> int:
    """Give each uncovered pixel (coverage 0) the mean of its covered 8-neighbours, repeating
    until none is left; returns how many were filled. For a few scattered pixels only."""
    cov = coverage.load()
    px = canvas.load()
    w, h = canvas.size
    todo = [(x, y) for y in range(h) for x in range(w) if cov[x, y] == 0]
    filled = 0
    while todo:
        later, done = [], []
        for x, y in todo:
            near = [
                px[x + dx, y + dy]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                if (dx or dy) and 0 <= x + dx < w and 0 <= y + dy < h and cov[x + dx, y + dy]
            ]
            if near:
                done.append(
                    ((x, y), tuple(round(sum(c[k] for c in near) / len(near)) for k in range(3)))
                )
            else:
                later.append((x, y))
        if not done:
            break
        for (x, y), colour in done:
            px[x, y] = colour
            cov[x, y] = 255
        filled += len(done)
        todo = later
    return filled


def reassemble(board: Board, images: dict[str, "Image.Image"]) -> Reassembly:
    """Put a board's pieces back together.

    The board gives the canvas (`width`×`height`) and each piece's centre as a share of it:
    top-left ≈ (x·W − w/2, y·H − h/2). `place_pieces` finds the integer positions from the
    overlaps; pixels with alpha above 127 are pasted in board order; the result is cropped to the
    covered box with ragged outer edges trimmed (`EDGE_TRIM`). Up to MAX_FILLED of the box may be
    left uncovered: those pixels are filled from their neighbours (`holes`); more raise
    `DataError`. Boards whose canvas is a background image with holes (babyshapes) are refused:
    their silhouettes are larger than the pieces and would leave white outlines.
    """
    if board.background:
        raise DataError(
            f"board '{board.title}': boards with a background image are not reassembled"
        )
    if not (board.width and board.height):
        raise DataError(f"board '{board.title}': no canvas size")
    W, H = board.width, board.height
    pieces = []
    for p in board.pieces:
        if p.image not in images:
            raise DataError(f"board '{board.title}': image {p.image} is missing")
        pieces.append(images[p.image].convert("RGBA"))
    nominal = [
        (p.x * W - im.size[0] / 2, p.y * H - im.size[1] / 2) for p, im in zip(board.pieces, pieces)
    ]
    positions, placement = place_pieces(pieces, nominal)
    # Work on a canvas large enough for every piece, then crop.
    ox = -min(0, min(x for x, _ in positions))
    oy = -min(0, min(y for _, y in positions))
    cw = max(W, max(x + im.size[0] for (x, _), im in zip(positions, pieces))) + ox
    ch = max(H, max(y + im.size[1] for (_, y), im in zip(positions, pieces))) + oy
    canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
    coverage = Image.new("L", (cw, ch), 0)
    for (x, y), im in zip(positions, pieces):
        mask = _opaque(im)
        canvas.paste(im.convert("RGB"), (x + ox, y + oy), mask)
        coverage.paste(255, (x + ox, y + oy), mask)
    box = _trimmed_box(coverage, EDGE_TRIM)
    if box[2] <= box[0] or box[3] <= box[1]:
        raise DataError(f"board '{board.title}': no piece lands on the canvas")
    out, out_cov = canvas.crop(box), coverage.crop(box)
    holes = out_cov.histogram()[0]
    if holes > MAX_FILLED * out.size[0] * out.size[1]:
        raise DataError(
            f"board '{board.title}': {holes} pixels of the reassembled {out.size[0]}x{out.size[1]} "
            f"image are covered by no piece (at most {MAX_FILLED:.2%} may be filled)"
        )
    _fill_holes(out, out_cov)
    total = count = 0
    for i in range(len(pieces)):
        for j in placement.neighbours[i]:
            if j > i:
                t, c = placement.pair(
                    i, j, positions[j][0] - positions[i][0], positions[j][1] - positions[i][1]
                )
                total, count = total + t, count + c
    canvas_box = (box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy)
    return Reassembly(out, canvas_box, holes, positions, total / count if count else 0.0, count)


# ---------------------------------------------------------------------------------------------
# Train / held-out split


def split_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def assign_splits(items: list[tuple[str, str]], share: float, pinned: set[str]) -> dict[str, str]:
    """`{name: "train" | "heldout"}` for `(name, stratum)` items: deterministic, independent of
    the items' order, and stratified by source.

    Per stratum, names are ordered by their SHA-256, pinned names first; the first
    round(share · n) are held out (at least one for a stratum of 4 or more, and at least every
    pinned name). Names must be unique (one name, one split).
    """
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise DataError(f"duplicate names: {sorted({n for n in names if names.count(n) > 1})}")
    unknown = pinned - set(names)
    if unknown:
        raise DataError(f"pinned held-out photos not among the items: {sorted(unknown)}")
    by_stratum: dict[str, list[str]] = {}
    for name, stratum in items:
        by_stratum.setdefault(stratum, []).append(name)
    out: dict[str, str] = {}
    for members in by_stratum.values():
        ordered = sorted(members, key=lambda n: (n not in pinned, split_key(n)))
        quota = round(share * len(ordered))
        if len(ordered) >= 4:
            quota = max(quota, 1)
        quota = max(quota, sum(n in pinned for n in ordered))
        for rank, name in enumerate(ordered):
            out[name] = "heldout" if rank < quota else "train"
    return out


def dhash(im: "Image.Image") -> int:
    """256-bit difference hash (16×16 horizontal gradient signs of a 17×16 grey thumbnail)."""
    g = im.convert("L").resize((17, 16), Image.Resampling.LANCZOS).load()
    bits = 0
    for y in range(16):
        for x in range(16):
            bits = (bits << 1) | (g[x, y] > g[x + 1, y])
    return bits


SAME_PHOTO_BITS = 12  # dHash distance at or below which two photos count as one


# ---------------------------------------------------------------------------------------------
# Image conversion


def load_rgb(data: bytes, what: str) -> "Image.Image":
    """Decode, apply EXIF orientation and an embedded ICC profile (to sRGB), drop alpha."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # Pillow raises several types for undecodable data
        raise DataError(f"{what}: cannot decode image: {e}") from None
    im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile")
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, (0, 0), im.getchannel("A"))
        im = bg
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(
                im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError) as e:
            raise DataError(f"{what}: embedded colour profile cannot be applied: {e}") from None
        # The pixels are sRGB now; the profile Pillow attaches would make the files differ
        # from run to run.
        im.info.pop("icc_profile", None)
    return im


def scaled(im: "Image.Image", max_short: int) -> "Image.Image":
    """`im` scaled (Lanczos) so that its shorter side is at most `max_short`."""
    w, h = im.size
    short = min(w, h)
    if short <= max_short:
        return im
    f = max_short / short
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def save_jpeg(im: "Image.Image", path: Path) -> None:
    im.save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)


def save_png(im: "Image.Image", path: Path) -> None:
    im.save(path, "PNG", optimize=True)


# ---------------------------------------------------------------------------------------------
# The catalogue: which files of which packages become which images


@dataclass
class GcomprisPhotos:
    """Content photos of one GCompris activity archive."""

    stratum: str  # output name prefix and split stratum, e.g. "erase"
    rcc: str  # archive name, e.g. "erase.rcc"
    folder: str  # folder inside the archive, e.g. "gcompris/src/activities/erase/resource"
    pattern: str = "*.webp"  # glob relative to `folder` ("**" crosses folders)
    exclude: tuple[str, ...] = ()  # globs (relative to `folder`) left out


@dataclass
class PlainPhotos:
    """Content photos lying as plain files in a package."""

    stratum: str
    package: str
    folder: str  # inside the package, e.g. "usr/share/backgrounds"
    files: tuple[str, ...]
    copyright_file: str  # e.g. "usr/share/doc/lomiri-wallpapers-16.04/copyright"


@dataclass
class Painting:
    """A public-domain artwork, with the facts that make it public domain."""

    out: str  # output file name
    artist: str
    title: str
    date: str  # of the artwork
    artist_died: str  # year, or "" for anonymous works
    why_pd: str  # why the artwork is in the public domain


@dataclass
class GcomprisStyle:
    """A style image from a GCompris archive: an intact image or a board to reassemble."""

    painting: Painting
    rcc: str
    folder: str  # the activity's resource folder in the archive
    image: str = ""  # an intact image, relative to `folder`
    board: str = ""  # a board file, relative to `folder`


@dataclass
class PlainStyle:
    painting: Painting
    package: str
    path: str  # inside the package


@dataclass
class Catalogue:
    gcompris_package: str
    gcompris_rcc_dir: str  # inside the package
    gcompris_photos: list[GcomprisPhotos]
    plain_photos: list[PlainPhotos]
    gcompris_styles: list[GcomprisStyle]
    plain_styles: list[PlainStyle]
    eval_photos: tuple[str, ...]  # output names pinned to held-out and copied to heldout-eval
    skipped_styles: tuple[tuple[str, str], ...] = ()  # (what, why), listed in ATTRIBUTION.md


def _pd_old(died: str) -> str:
    return f"artist died {died}: public domain worldwide (life + 100 years or less)"


_VG = "Vincent van Gogh"
_HOKUSAI = "Katsushika Hokusai"
_HIROSHIGE = "Utagawa Hiroshige"


def _details(out: str, stem: str, title: str, date: str) -> GcomprisStyle:
    return GcomprisStyle(
        Painting(out, _VG, title, date, "1890", _pd_old("1890")),
        rcc="details.rcc",
        folder="gcompris/src/activities/details/resource",
        image=f"image/{stem}_background.webp",
    )


def _paintings(
    out: str, board: int, artist: str, title: str, date: str, died: str, why: str = ""
) -> GcomprisStyle:
    return GcomprisStyle(
        Painting(out, artist, title, date, died, why or _pd_old(died)),
        rcc="paintings.rcc",
        folder="gcompris/src/activities/paintings/resource",
        board=f"board/board{board}_0.qml",
    )


def default_catalogue() -> Catalogue:
    """What `fetch-training-data.sh` extracts from gcompris-qt-data 3.1-2, lomiri-wallpapers
    20.04.0-2 and opencv-doc 4.6.0 (Debian 12). Photos were chosen by looking at them: photographs
    of scenes, animals, people and things; renders, drawings, sprites, stereo/near-duplicate pairs
    and calibration charts are left out."""
    act = "gcompris/src/activities"
    gcompris_photos = [
        GcomprisPhotos("erase", "erase.rcc", f"{act}/erase/resource"),
        GcomprisPhotos(
            "monuments", "explore_monuments.rcc", f"{act}/explore_monuments/resource", "**/*.webp"
        ),
        GcomprisPhotos(
            "world-animals",
            "explore_world_animals.rcc",
            f"{act}/explore_world_animals/resource/animals",
        ),
        GcomprisPhotos(
            "farm-animals",
            "explore_farm_animals.rcc",
            f"{act}/explore_farm_animals/resource/animals",
        ),
        GcomprisPhotos(
            "world-music", "explore_world_music.rcc", f"{act}/explore_world_music/resource/music"
        ),
        # The fish are sprites; the sea backgrounds are underwater photographs.
        GcomprisPhotos("clickgame", "clickgame.rcc", f"{act}/clickgame/resource", "sea*.webp"),
        # The Van Gogh backgrounds of this activity are style images (below).
        GcomprisPhotos(
            "details",
            "details.rcc",
            f"{act}/details/resource/image",
            "*_background.webp",
            exclude=(
                "Eglise_dAuvers-sur-Oise_background.webp",
                "Gogh4_background.webp",
                "PortraitOfPereTanguy_background.webp",
                "Van_Gogh_The_Night_Cafe_background.webp",
                "VincentVanGogh*_background.webp",
            ),
        ),
        GcomprisPhotos(
            "categorization",
            "categorization.rcc",
            f"{act}/categorization/resource/images",
            "**/*.webp",
        ),
    ]
    lomiri16 = "lomiri-wallpapers-16.04"
    lomiri20 = "lomiri-wallpapers-20.04"
    plain_photos = [
        # analogpattern (a glitter texture) is left out, the rest are photographs.
        PlainPhotos(
            "lomiri",
            lomiri16,
            "usr/share/backgrounds",
            (
                "Bridge_by_Sander_Klootwijk.jpg",
                "Dragonfly_by_Bolly.jpg",
                "Picture_0B_by_freespace.jpg",
                "Picture_1A_by_freespace.jpg",
                "Wine_by_Jakkub_Mede.jpg",
                "aitzgorri_by_Aitzol_Berasategi.jpg",
                "free_by_Peter_Nerlich.jpg",
                "friends_by_Aitzol_Berasategi.jpg",
                "greentock_by_Peter_Nerlich.jpg",
                "life_by_Aitzol_Berasategi.jpg",
                "picosdeeuropa_by_Aitzol_Berasategi.jpg",
                "seeding_by_Clements_Engelhardt.jpg",
                "sunset_by_Aitzol_Berasategi.jpg",
            ),
            f"usr/share/doc/{lomiri16}/copyright",
        ),
        # Fossa, Infinite-Sea and Painting-Colors are renders.
        PlainPhotos(
            "lomiri",
            lomiri20,
            "usr/share/backgrounds",
            ("Kleiber_by_Lukas_Baubkus.jpg",),
            f"usr/share/doc/{lomiri20}/copyright",
        ),
        # One of each stereo or before/after pair (aloeL/R, left/right, leuvenA/B, ela_*, ...);
        # fruits.jpg and graf1.png are the bundled models' style images.
        PlainPhotos(
            "opencv",
            "opencv-doc",
            "usr/share/doc/opencv-doc/examples/data",
            (
                "aero1.jpg",
                "aero3.jpg",
                "aloeL.jpg",
                "apple.jpg",
                "baboon.jpg",
                "basketball1.png",
                "blox.jpg",
                "board.jpg",
                "box_in_scene.png",
                "building.jpg",
                "butterfly.jpg",
                "chicky_512.png",
                "ela_original.jpg",
                "home.jpg",
                "left.jpg",
                "leuvenA.jpg",
                "licenseplate_motion.jpg",
                "messi5.jpg",
                "orange.jpg",
                "rubberwhale1.png",
                "squirrel_cls.jpg",
                "stuff.jpg",
            ),
            "usr/share/doc/opencv-doc/copyright",
        ),
    ]
    styles = [
        _details("night-cafe.png", "Van_Gogh_The_Night_Cafe", "The Night Café", "1888"),
        _details("cafe-terrace-at-night.png", "Gogh4", "Café Terrace at Night", "1888"),
        _details(
            "van-gogh-church-at-auvers.png",
            "Eglise_dAuvers-sur-Oise",
            "The Church at Auvers",
            "1890",
        ),
        _details("van-gogh-harvest.png", "VincentVanGogh0019", "The Harvest", "1888"),
        _details(
            "van-gogh-painter-on-the-road.png",
            "VincentVanGogh0013",
            "The Painter on His Way to Work",
            "1888",
        ),
        _details(
            "van-gogh-langlois-bridge.png",
            "VincentVanGoghBridge",
            "The Langlois Bridge at Arles",
            "1888",
        ),
        _details(
            "van-gogh-saint-paul-hospital.png",
            "VincentVanGogh0012",
            "Entrance Hall of Saint-Paul Hospital",
            "1889",
        ),
        _details(
            "van-gogh-pere-tanguy.png", "PortraitOfPereTanguy", "Portrait of Père Tanguy", "1887"
        ),
        _paintings("great-wave.png", 7, _HOKUSAI, "The Great Wave off Kanagawa", "c. 1831", "1849"),
        _paintings("hokusai-ejiri.png", 6, _HOKUSAI, "Ejiri in Suruga Province", "c. 1831", "1849"),
        _paintings(
            "hokusai-kazusa-sea-route.png", 12, _HOKUSAI, "Kazusa Sea Route", "c. 1830", "1849"
        ),
        _paintings(
            "hokusai-ryogoku-bridge.png",
            10,
            _HOKUSAI,
            "Sunset over Ryōgoku Bridge",
            "c. 1830",
            "1849",
        ),
        _paintings("hokusai-poppies.png", 11, _HOKUSAI, "Poppies", "c. 1833", "1849"),
        _paintings("hokusai-oiran-and-kamuro.png", 4, _HOKUSAI, "Oiran and Kamuro", "", "1849"),
        _paintings("hokusai-woman-holding-fan.png", 5, _HOKUSAI, "Woman Holding a Fan", "", "1849"),
        _paintings(
            "hiroshige-inokashira-snow.png",
            8,
            _HIROSHIGE,
            "Benzaiten Shrine at Inokashira in Snow",
            "",
            "1858",
        ),
        _paintings(
            "hiroshige-horse-mackerel-and-prawn.png",
            9,
            _HIROSHIGE,
            "Horse Mackerel and Prawn",
            "c. 1840",
            "1858",
        ),
        _paintings(
            "kandinsky-composition-viii.png",
            19,
            "Wassily Kandinsky",
            "Composition VIII",
            "1923",
            "1944",
            "artist died 1944 (public domain where copyright lasts life + 70 years or less); "
            "published 1923 (public domain in the United States since 2019)",
        ),
        _paintings(
            "renoir-moulin-de-la-galette.png",
            1,
            "Pierre-Auguste Renoir",
            "Bal du moulin de la Galette",
            "1876",
            "1919",
        ),
        _paintings(
            "renoir-girls-at-the-piano.png",
            18,
            "Pierre-Auguste Renoir",
            "Girls at the Piano",
            "1892",
            "1919",
        ),
        _paintings("cassatt-summertime.png", 21, "Mary Cassatt", "Summertime", "1894", "1926"),
        _paintings(
            "bazille-ramparts-aigues-mortes.png",
            20,
            "Frédéric Bazille",
            "The Ramparts at Aigues-Mortes",
            "1867",
            "1870",
        ),
        _paintings(
            "van-gogh-village-street-auvers.png",
            22,
            _VG,
            "Village Street in Auvers",
            "1890",
            "1890",
        ),
        _paintings(
            "bruegel-harvesters.png",
            17,
            "Pieter Bruegel the Elder",
            "The Harvesters",
            "1565",
            "1569",
        ),
        _paintings("mona-lisa.png", 14, "Leonardo da Vinci", "Mona Lisa", "1503–1519", "1519"),
        _paintings("durer-lion.png", 16, "Albrecht Dürer", "Lion", "1494", "1528"),
        _paintings("arcimboldo-spring.png", 2, "Giuseppe Arcimboldo", "Spring", "1573", "1593"),
        _paintings(
            "arcimboldo-librarian.png", 3, "Giuseppe Arcimboldo", "The Librarian", "c. 1566", "1593"
        ),
        _paintings(
            "bellini-pesaro-altarpiece.png",
            15,
            "Giovanni Bellini",
            "Pesaro Altarpiece (detail)",
            "1475–1485",
            "1516",
        ),
    ]
    plain_styles = [
        PlainStyle(
            Painting("starry-night.jpg", _VG, "The Starry Night", "1889", "1890", _pd_old("1890")),
            "opencv-doc",
            "usr/share/doc/opencv-doc/examples/data/starry_night.jpg",
        )
    ]
    eval_photos = (
        "lomiri-bridge-by-sander-klootwijk.jpg",  # sky and sand
        "lomiri-aitzgorri-by-aitzol-berasategi.jpg",  # meadow, mountains, sky
        "lomiri-greentock-by-peter-nerlich.jpg",  # a clock on a plain wall
        "world-animals-polar-bear.jpg",  # snow
        "farm-animals-sheep.jpg",  # lawn
        "erase-swans.jpg",  # dark water
        "clickgame-sea4.jpg",  # underwater blue
        "monuments-egypt-red-pyramid.jpg",  # sand and sky
        "details-tower-bridge-london.jpg",  # sky and river
        "world-music-orchestra.jpg",  # people, dark hall
        "opencv-building.jpg",  # walls and sky
        "opencv-messi5.jpg",  # people, stadium
    )
    skipped_styles = (
        (
            "paintings board 13, Michelangelo's Pietà",
            "a photograph of a sculpture: the photograph has its own author",
        ),
        ("paintings: Degas, The Dance Class (tiles)", "no board places its tiles"),
        (
            "babyshapes: Gauguin's Arearea, Bruegel's Peasant Wedding, The Lady and the Unicorn, "
            "Van Gogh's Bedroom in Arles, Bosschaert's Flower Still Life",
            "their backgrounds' white silhouettes are larger than the pieces: white outlines remain",
        ),
    )
    return Catalogue(
        gcompris_package="gcompris-qt-data",
        gcompris_rcc_dir="usr/share/gcompris-qt/rcc",
        gcompris_photos=gcompris_photos,
        plain_photos=plain_photos,
        gcompris_styles=styles,
        plain_styles=plain_styles,
        eval_photos=eval_photos,
        skipped_styles=skipped_styles,
    )


# ---------------------------------------------------------------------------------------------
# The build


@dataclass
class Package:
    name: str
    version: str
    root: Path  # where `dpkg -x` put it


@dataclass
class Row:
    """One attribution row."""

    file: str  # relative to OUT
    kind: str  # "content" or "style"
    split: str  # "train", "heldout" or "style"
    package: str
    version: str
    source_path: str  # path inside the package (archive:member for .rcc files)
    source_size: str  # WxH of the source image(s)
    size: str  # WxH written
    author: str
    title: str
    license: str
    origin: str  # where the package's credit says the image comes from
    notes: str


TSV_COLUMNS = [
    "file",
    "kind",
    "split",
    "package",
    "version",
    "source_path",
    "source_size",
    "size",
    "author",
    "title",
    "license",
    "origin",
    "notes",
]


def slug(text: str) -> str:
    """`ajantaCave` -> `ajanta-cave`, `Bridge_by_X` -> `bridge-by-x`."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return re.sub(r"-+", "-", text)


def normalise_origin(url: str) -> str:
    return urllib.parse.unquote(url).strip().lower().replace(" ", "_")


def _size(im: "Image.Image") -> str:
    return f"{im.size[0]}x{im.size[1]}"


class Builder:
    """Writes the images of a `Catalogue` from unpacked `packages` into `out`."""

    def __init__(self, catalogue: Catalogue, packages: dict[str, Package], out: Path):
        self.cat = catalogue
        self.packages = packages
        self.out = out
        self.rcc_cache: dict[str, dict[str, bytes]] = {}
        self.rows: list[Row] = []
        self.skipped: list[tuple[str, str]] = []
        self.credit_files: set[tuple[str, str]] = set()  # (package, path) copied to sources/
        self.readmes: dict[tuple[str, str], bytes] = {}  # credit files that live inside archives

    def package(self, name: str) -> Package:
        if name not in self.packages:
            raise DataError(f"package {name} was not given (--package {name}=VERSION:DIR)")
        return self.packages[name]

    def rcc(self, name: str) -> dict[str, bytes]:
        if name not in self.rcc_cache:
            pkg = self.package(self.cat.gcompris_package)
            path = pkg.root / self.cat.gcompris_rcc_dir / name
            if not path.is_file():
                raise DataError(
                    f"{pkg.name} {pkg.version} has no {self.cat.gcompris_rcc_dir}/{name}"
                )
            self.rcc_cache[name] = read_rcc(path.read_bytes(), str(path.name))
        return self.rcc_cache[name]

    def readme_credit(self, files: dict[str, bytes], member: str) -> tuple[Credit | None, str, str]:
        """The credit of `member` from the nearest README in its folder or above, the README's
        path, and the name the README gives the file."""
        folder = member.rsplit("/", 1)[0]
        while "/" in folder:
            readme = f"{folder}/README"
            if readme in files:
                credits = parse_readme_credits(files[readme].decode("utf-8", "replace"))
                present = {m[len(folder) + 1 :] for m in files if m.startswith(folder + "/")}
                c, listed = find_readme_credit(member[len(folder) + 1 :], credits, present)
                if c:
                    return c, readme, listed
            folder = folder.rsplit("/", 1)[0]
        return None, "", ""

    def keep_credit_file(self, package: str, path: str, data: bytes) -> None:
        """Remember a credit file inside an archive, to copy it to sources/."""
        self.credit_files.add((package, path))
        self.readmes[(package, path)] = data

    def debian_credits(self, package: str, path: str) -> list[Credit]:
        pkg = self.package(package)
        f = pkg.root / path
        if not f.is_file():
            raise DataError(f"{package} {pkg.version} has no {path}")
        self.credit_files.add((package, path))
        return parse_debian_copyright(f.read_text("utf-8", "replace"))

    # -- content photos

    def collect_photos(self) -> list[dict]:
        """Every content photo as a dict with its decoded image and attribution fields."""
        photos = []
        pkg = self.package(self.cat.gcompris_package)
        gc_credits = self.debian_credits(pkg.name, f"usr/share/doc/{pkg.name}/copyright")
        for src in self.cat.gcompris_photos:
            files = self.rcc(src.rcc)
            members = sorted(
                m
                for m in files
                if m.startswith(src.folder + "/")
                and fnmatch.fnmatchcase(m[len(src.folder) + 1 :], src.pattern)
                and not any(fnmatch.fnmatchcase(m[len(src.folder) + 1 :], e) for e in src.exclude)
            )
            if not members:
                raise DataError(f"{src.rcc}: nothing matches {src.folder}/{src.pattern}")
            for m in members:
                rel = m[len(src.folder) + 1 :]
                credit, readme, listed = self.readme_credit(files, m)
                if credit:
                    self.keep_credit_file(
                        pkg.name, f"{self.cat.gcompris_rcc_dir}/{src.rcc}:{readme}", files[readme]
                    )
                    where = "activity README"
                    if listed.rsplit("/", 1)[-1] != m.rsplit("/", 1)[-1]:
                        where += f", where it is listed as '{listed}'"
                else:
                    credit = find_debian_credit(
                        "src/" + m.split("gcompris/src/", 1)[-1], gc_credits, specific=True
                    )
                    where = "Debian copyright file"
                if credit is None:
                    self.skipped.append(
                        (f"{self.cat.gcompris_rcc_dir}/{src.rcc}:{m}", "no credit for this image")
                    )
                    continue
                stem = os.path.splitext(rel)[0].replace("/", "-")
                if src.stratum == "details":
                    stem = stem.removesuffix("_background")
                name = f"{src.stratum}-{slug(stem)}.jpg"
                photos.append(
                    dict(
                        name=name,
                        stratum=src.stratum,
                        data=files[m],
                        package=pkg,
                        source_path=f"{self.cat.gcompris_rcc_dir}/{src.rcc}:{m}",
                        author=credit.copyright,
                        title=self.board_title(files, m),
                        license=credit.license,
                        origin=credit.source or _source_in(credit.comment),
                        notes="; ".join(x for x in (credit.comment, f"credit: {where}") if x),
                    )
                )
        for src in self.cat.plain_photos:
            pkg = self.package(src.package)
            credits = self.debian_credits(pkg.name, src.copyright_file)
            for f in src.files:
                path = f"{src.folder}/{f}"
                full = pkg.root / path
                if not full.is_file():
                    raise DataError(f"{pkg.name} {pkg.version} has no {path}")
                credit = find_debian_credit(f, credits)
                if credit is None:
                    raise DataError(f"{pkg.name}: {f} has no paragraph in {src.copyright_file}")
                photos.append(
                    dict(
                        name=f"{src.stratum}-{slug(os.path.splitext(f)[0])}.jpg",
                        stratum=src.stratum,
                        data=full.read_bytes(),
                        package=pkg,
                        source_path=path,
                        author=credit.copyright,
                        title="",
                        license=credit.license,
                        origin="",
                        notes="credit: Debian copyright file"
                        + (f" ({credit.comment})" if credit.comment else ""),
                    )
                )
        names = [p["name"] for p in photos]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DataError(f"two photos would be written as {dupes}")
        return photos

    def board_title(self, files: dict[str, bytes], member: str) -> str:
        """The title of the board whose background is `member` ("" if none)."""
        if "/resource/" not in member:
            return ""
        resource, rel = member.split("/resource/", 1)
        for m, data in files.items():
            if m.startswith(f"{resource}/resource/board/") and m.endswith(".qml"):
                try:
                    b = parse_board(data.decode("utf-8", "replace"), m)
                except DataError:
                    continue
                if b.background == rel:
                    return b.title
        return ""

    def write_content(self, photos: list[dict]) -> dict[str, int]:
        """Decode, drop small and repeated photos, split, scale and write; returns
        `{"stratum/split": count}`."""
        kept = []
        for p in photos:
            im = load_rgb(p.pop("data"), f"{p['package'].name}:{p['source_path']}")
            if min(im.size) < MIN_SHORT_SIDE:
                self.skipped.append(
                    (p["source_path"], f"{_size(im)}: shorter side below {MIN_SHORT_SIDE} px")
                )
                continue
            p["source_size"] = im.size
            p["image"] = scaled(im, MAX_SHORT_SIDE)
            p["dhash"] = dhash(p["image"])
            kept.append(p)
        # One photo credited in two activities (same origin) or shipped twice (same look) is kept
        # once, in its largest copy, so that it cannot land in both splits.
        unique: list[dict] = []
        for p in sorted(kept, key=lambda p: -p["source_size"][0] * p["source_size"][1]):
            origin = normalise_origin(p["origin"])
            twin = next(
                (
                    q
                    for q in unique
                    if (origin and origin == normalise_origin(q["origin"]))
                    or bin(p["dhash"] ^ q["dhash"]).count("1") <= SAME_PHOTO_BITS
                ),
                None,
            )
            if twin:
                self.skipped.append((p["source_path"], f"the same photo as {twin['name']}"))
            else:
                unique.append(p)
        kept = [p for p in kept if any(p is q for q in unique)]
        splits = assign_splits(
            [(p["name"], p["stratum"]) for p in kept], HELDOUT_SHARE, set(self.cat.eval_photos)
        )
        counts: dict[str, int] = {}
        for p in kept:
            split = splits[p["name"]]
            folder = self.out / "content" / split
            folder.mkdir(parents=True, exist_ok=True)
            save_jpeg(p["image"], folder / p["name"])
            counts[f"{p['stratum']}/{split}"] = counts.get(f"{p['stratum']}/{split}", 0) + 1
            notes = p["notes"]
            if p["image"].size != p["source_size"]:
                notes = f"{notes}; scaled to a {MAX_SHORT_SIDE} px shorter side"
            self.rows.append(
                Row(
                    file=f"content/{split}/{p['name']}",
                    kind="content",
                    split=split,
                    package=p["package"].name,
                    version=p["package"].version,
                    source_path=p["source_path"],
                    source_size="{}x{}".format(*p["source_size"]),
                    size=_size(p["image"]),
                    author=p["author"],
                    title=p["title"],
                    license=p["license"],
                    origin=p["origin"],
                    notes=notes,
                )
            )
            p.pop("image")
        evals = self.out / "content" / "heldout-eval"
        evals.mkdir(parents=True, exist_ok=True)
        for name in self.cat.eval_photos:
            src = self.out / "content" / "heldout" / name
            if not src.is_file():
                raise DataError(f"evaluation photo {name} is not among the held-out photos")
            shutil.copyfile(src, evals / name)
        return counts

    # -- style images

    def write_styles(self) -> list[dict]:
        styles_dir = self.out / "styles"
        styles_dir.mkdir(parents=True, exist_ok=True)
        report = []
        pkg = self.package(self.cat.gcompris_package)
        gc_credits = self.debian_credits(pkg.name, f"usr/share/doc/{pkg.name}/copyright")
        for s in self.cat.gcompris_styles:
            files = self.rcc(s.rcc)
            p = s.painting
            if s.image:
                member = f"{s.folder}/{s.image}"
                if member not in files:
                    raise DataError(f"{s.rcc} has no {member}")
                im = Image.open(io.BytesIO(files[member]))
                im.load()
                if "A" in im.getbands() and im.getchannel("A").getextrema()[0] <= ALPHA_OPAQUE:
                    raise DataError(
                        f"{s.rcc}:{member} has transparent pixels; expected an intact painting"
                    )
                out_im = load_rgb(files[member], member)
                source_size, source_path, holes, how = (
                    _size(out_im),
                    f"{s.rcc}:{member}",
                    0,
                    "intact",
                )
                mismatch = None
                credit_member = member
            else:
                member = f"{s.folder}/{s.board}"
                if member not in files:
                    raise DataError(f"{s.rcc} has no {member}")
                board = parse_board(files[member].decode("utf-8", "replace"), f"{s.rcc}:{member}")
                needed = [q.image for q in board.pieces]
                images = {}
                for n in needed:
                    key = f"{s.folder}/{n}"
                    if key not in files:
                        raise DataError(f"{s.rcc}:{member}: piece {n} is not in the archive")
                    images[n] = Image.open(io.BytesIO(files[key]))
                    images[n].load()
                r = reassemble(board, images)
                out_im = r.image
                source_size = f"{board.width}x{board.height} canvas, {len(board.pieces)} pieces"
                source_path = f"{s.rcc}:{member}"
                how = f"reassembled from {len(board.pieces)} pieces, cropped to {r.box}"
                if r.holes:
                    how += f", {r.holes} uncovered pixels filled from their neighbours"
                credit_member = f"{s.folder}/{board.pieces[0].image}"
                holes, mismatch = r.holes, round(r.mismatch, 2)
            credit, readme, _ = self.readme_credit(files, credit_member)
            if credit:
                self.keep_credit_file(
                    pkg.name, f"{self.cat.gcompris_rcc_dir}/{s.rcc}:{readme}", files[readme]
                )
                file_licence = f"{credit.license} (activity README)"
            else:
                credit = find_debian_credit(
                    "src/" + credit_member.split("gcompris/src/", 1)[-1], gc_credits
                )
                if credit is None:
                    raise DataError(f"{s.rcc}:{credit_member}: no licence for the package's copy")
                file_licence = f"{credit.license} (Debian copyright file)"
            out = styles_dir / p.out
            if out.suffix == ".png":
                save_png(out_im, out)
            else:
                save_jpeg(out_im, out)
            self.rows.append(
                Row(
                    file=f"styles/{p.out}",
                    kind="style",
                    split="style",
                    package=pkg.name,
                    version=pkg.version,
                    source_path=f"{self.cat.gcompris_rcc_dir}/{source_path}",
                    source_size=source_size,
                    size=_size(out_im),
                    author=p.artist,
                    title=f"{p.title}, {p.date}" if p.date else p.title,
                    license=f"Public domain ({p.why_pd}); the package's copy: {file_licence}",
                    origin=credit.source or _source_in(credit.comment),
                    notes=how,
                )
            )
            report.append(
                dict(file=p.out, size=_size(out_im), how=how, holes=holes, mismatch=mismatch)
            )
        for s in self.cat.plain_styles:
            pkg = self.package(s.package)
            full = pkg.root / s.path
            if not full.is_file():
                raise DataError(f"{pkg.name} {pkg.version} has no {s.path}")
            p = s.painting
            im = load_rgb(full.read_bytes(), s.path)
            credit = find_debian_credit(
                s.path, self.debian_credits(pkg.name, f"usr/share/doc/{pkg.name}/copyright")
            )
            file_licence = (
                f"; the package's copy: {credit.license} (Debian copyright file)" if credit else ""
            )
            shutil.copyfile(full, styles_dir / p.out)
            self.rows.append(
                Row(
                    file=f"styles/{p.out}",
                    kind="style",
                    split="style",
                    package=pkg.name,
                    version=pkg.version,
                    source_path=s.path,
                    source_size=_size(im),
                    size=_size(im),
                    author=p.artist,
                    title=f"{p.title}, {p.date}" if p.date else p.title,
                    license=f"Public domain ({p.why_pd}){file_licence}",
                    origin="",
                    notes="copied unchanged",
                )
            )
            report.append(dict(file=p.out, size=_size(im), how="copied", holes=0, mismatch=None))
        return report

    # -- attribution

    def write_sources(self) -> None:
        readmes = self.readmes
        for package, path in sorted(self.credit_files):
            dest = self.out / "sources" / package / path.replace(":", "/").replace("usr/share/", "")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if (package, path) in readmes:
                dest.write_bytes(readmes[(package, path)])
            else:
                shutil.copyfile(self.package(package).root / path, dest)

    def write_attribution(self, counts: dict[str, int], styles: list[dict]) -> None:
        rows = sorted(self.rows, key=lambda r: (r.kind != "style", r.file))
        with open(self.out / "attribution.tsv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(TSV_COLUMNS)
            for r in rows:
                w.writerow([_one_line(getattr(r, c)) for c in TSV_COLUMNS])
        pkgs = sorted({(r.package, r.version) for r in rows})
        lines = [
            "# Training images: sources and licences",
            "",
            "Written by `scripts/fetch-training-data.sh` (recipe "
            f"{RECIPE}) from these Debian packages: "
            + ", ".join(f"`{n}` {v}" for n, v in pkgs)
            + ". `attribution.tsv` has the same rows with all fields; `sources/` holds the credit "
            "files they were read from (GCompris activity READMEs, Debian copyright files).",
            "",
            "Content photos were scaled so that their shorter side is at most "
            f"{MAX_SHORT_SIDE} px and re-encoded as JPEG (quality {JPEG_QUALITY}): these are "
            "modified copies. Licences are as the package credits them; CC BY and CC BY-SA need "
            "the author credited, CC BY-SA derivatives to be shared alike.",
            "",
            "## Counts",
            "",
            "| source | train | heldout |",
            "|---|---|---|",
        ]
        strata = sorted({k.split("/")[0] for k in counts})
        for s in strata:
            lines.append(
                f"| {s} | {counts.get(s + '/train', 0)} | {counts.get(s + '/heldout', 0)} |"
            )
        lines.append(
            f"| **all** | {sum(v for k, v in counts.items() if k.endswith('/train'))} | "
            f"{sum(v for k, v in counts.items() if k.endswith('/heldout'))} |"
        )
        lines += [
            "",
            f"Style images: {len(styles)}. `content/heldout-eval/` holds {len(self.cat.eval_photos)} "
            "of the held-out photos: " + ", ".join(f"`{n}`" for n in self.cat.eval_photos) + ".",
            "",
        ]
        lines += [
            "## Style images",
            "",
            "| file | size | artist | title | licence | source in package | how |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r.kind == "style":
                lines.append(
                    f"| `{r.file}` | {r.size} | {_md(r.author)} | {_md(r.title)} | {_md(r.license)} | "
                    f"`{r.package}` {r.version}: `{r.source_path}` | {_md(r.notes)} |"
                )
        if self.cat.skipped_styles:
            lines += [
                "",
                "Left out: "
                + "; ".join(f"{w} ({why})" for w, why in self.cat.skipped_styles)
                + ".",
            ]
        lines += [
            "",
            "## Content photos",
            "",
            "| file | split | author / copyright | title | licence | origin | credit notes | source in package |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r.kind == "content":
                lines.append(
                    f"| `{r.file}` | {r.split} | {_md(r.author)} | {_md(r.title)} | {_md(r.license)} | "
                    f"{_md(r.origin)} | {_md(r.notes)} | `{r.package}` {r.version}: `{r.source_path}` |"
                )
        if self.skipped:
            lines += [
                "",
                "Left out: " + "; ".join(f"`{p}` ({why})" for p, why in self.skipped) + ".",
            ]
        (self.out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def build(self) -> dict:
        t0 = time.monotonic()
        photos = self.collect_photos()
        counts = self.write_content(photos)
        styles = self.write_styles()
        self.write_sources()
        self.write_attribution(counts, styles)
        return dict(
            counts=counts, styles=styles, skipped=self.skipped, seconds=time.monotonic() - t0
        )


def _source_in(comment: str) -> str:
    """The URL after "source at" in a credit comment ("" if none)."""
    m = re.search(r"source at (https?://\S+)", comment or "", re.I)
    return m.group(1).rstrip(".,;)") if m else ""


def _one_line(v) -> str:
    return re.sub(r"\s+", " ", str(v)).strip()


def _md(v: str) -> str:
    return _one_line(v).replace("|", "\\|")


# ---------------------------------------------------------------------------------------------
# Command line


def parse_package(arg: str) -> Package:
    m = re.match(r"^([a-z0-9][a-z0-9.+-]*)=([^:]+):(.+)$", arg)
    if not m:
        raise argparse.ArgumentTypeError(f"expected NAME=VERSION:DIR, got '{arg}'")
    root = Path(m.group(3))
    if not root.is_dir():
        raise argparse.ArgumentTypeError(f"{root} is not a directory")
    return Package(m.group(1), m.group(2), root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the training images from unpacked packages")
    b.add_argument(
        "--package",
        type=parse_package,
        action="append",
        required=True,
        help="NAME=VERSION:DIR, a package unpacked by dpkg -x (repeat)",
    )
    b.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    x = sub.add_parser("extract", help="list or extract the files of a Qt .rcc archive")
    x.add_argument("rcc", type=Path)
    x.add_argument("--to", type=Path, help="extract into this folder (default: list)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "extract":
            files = read_rcc(args.rcc.read_bytes(), str(args.rcc))
            for name, data in sorted(files.items()):
                if args.to:
                    dest = args.to / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
                else:
                    print(f"{len(data):>10}  {name}")
            return 0
        if args.out.exists():
            raise DataError(f"{args.out} already exists")
        args.out.mkdir(parents=True)
        packages = {p.name: p for p in args.package}
        result = Builder(default_catalogue(), packages, args.out).build()
        print(json.dumps(result, indent=1, default=str))
        return 0
    except (DataError, OSError) as e:
        print(f"training_data: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
