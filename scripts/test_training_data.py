#!/usr/bin/env python3
"""Tests of scripts/training_data.py on small fixtures made here (no package download).

Run by `cargo test --test training_data` with the Pillow venv that `scripts/setup.sh --test`
makes: `.deps/data-venv/bin/python scripts/test_training_data.py`.
"""

import csv
import hashlib
import io
import random
import struct
import sys
import tempfile
import unittest
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True

import training_data as td  # noqa: E402
from PIL import Image, ImageChops, ImageCms  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Fixtures


def qt_hash(name: str) -> int:
    """Qt's qt_hash over UTF-16 code units, as rcc stores it."""
    h = 0
    for unit in struct.unpack(f">{len(name.encode('utf-16-be')) // 2}H", name.encode("utf-16-be")):
        h = (h << 4) + unit
        h ^= (h & 0xF0000000) >> 23
        h &= 0x0FFFFFFF
    return h


def write_rcc(files: dict[str, bytes], compress: set[str] = frozenset(), version: int = 3) -> bytes:
    """A Qt binary resource archive holding `files` (paths with '/'), written the way Qt's rcc
    lays it out: header, then data, names and the tree; children sorted by name hash; the
    entries in `compress` stored qCompress'ed (flag 1)."""
    root: dict = {}
    for path, data in files.items():
        node = root
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = data

    data_blob = bytearray()
    names_blob = bytearray()
    name_offsets: dict[str, int] = {}

    def name_off(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names_blob)
            text = name.encode("utf-16-be")
            names_blob.extend(struct.pack(">HI", len(text) // 2, qt_hash(name)) + text)
        return name_offsets[name]

    # Breadth-first node numbering, children consecutive, as rcc does.
    nodes = [("", root, "")]  # (name, content, full path)
    entries = []
    queue = [0]
    while queue:
        i = queue.pop(0)
        name, content, path = nodes[i]
        if isinstance(content, dict):
            children = sorted(content.items(), key=lambda kv: qt_hash(kv[0]))
            first = len(nodes)
            for cname, cval in children:
                nodes.append((cname, cval, f"{path}/{cname}".lstrip("/")))
                queue.append(len(nodes) - 1)
            entries.append((i, "dir", len(children), first))
        else:
            entries.append((i, "file", content, path))
    entries.sort()
    node_size = 14 if version == 1 else 22
    tree = bytearray()
    for i, kind, a, b in entries:
        name = nodes[i][0]
        noff = name_off(name) if i else 0
        if kind == "dir":
            tree.extend(struct.pack(">IHII", noff, 2, a, b))
        else:
            payload = a
            flags = 0
            if b in compress:
                payload = struct.pack(">I", len(a)) + zlib.compress(a)
                flags = 1
            tree.extend(struct.pack(">IHHHI", noff, flags, 0, 0, len(data_blob)))
            data_blob.extend(struct.pack(">I", len(payload)) + payload)
        if version >= 2:
            tree.extend(struct.pack(">Q", 0))
        assert len(tree) % node_size == 0
    header = 20 if version < 3 else 24  # version 3 adds overall flags
    data_off = header
    names_off = data_off + len(data_blob)
    tree_off = names_off + len(names_blob)
    head = struct.pack(">4sIIII", b"qres", version, tree_off, data_off, names_off)
    if version >= 3:
        head += struct.pack(">I", 0)
    return head + bytes(data_blob) + bytes(names_blob) + bytes(tree)


def noise_image(w: int, h: int, seed: int) -> Image.Image:
    """A textured RGB image: random low-frequency colours plus strong pixel noise, so that
    images of different seeds look different and no two offsets of one image match."""
    rnd = random.Random(seed)
    grid = Image.frombytes("RGB", (6, 4), rnd.randbytes(6 * 4 * 3)).resize(
        (w, h), Image.Resampling.BILINEAR
    )
    noise = Image.frombytes("L", (w, h), rnd.randbytes(w * h)).point(lambda v: v // 3)
    return ImageChops.add(grid, Image.merge("RGB", (noise, noise, noise)), 1.0, -42)


def webp_lossless(im: Image.Image, icc: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    im.save(buf, "WEBP", lossless=True, exact=True, **extra)
    return buf.getvalue()


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def cut_two_tiles(painting: Image.Image, split_x: int, overlap: int):
    """Two RGBA tiles of `painting` (left, right) overlapping by `overlap` columns, each cropped
    to its opaque box, and the top-left of each in the painting."""
    w, h = painting.size
    left = painting.crop((0, 0, split_x + overlap, h)).convert("RGBA")
    right = painting.crop((split_x, 0, w, h)).convert("RGBA")
    return (left, (0, 0)), (right, (split_x, 0))


BOARD_QML = """import QtQuick 2.12

QtObject {{
   property string instruction: qsTr("Test Painter, Two Tiles - 1900")
   property var levels : [
      {{
         "pixmapfile" : "image/bg.svg",
         "type" : "SHAPE_BACKGROUND_IMAGE",
         "width": {W},
         "height": {H}
      }},
{pieces}
   ]
}}
"""


def board_qml(W: int, H: int, pieces: list[tuple[str, float, float]]) -> str:
    body = ",\n".join(
        f'      {{\n         "pixmapfile" : "{name}",\n         "x" : "{x:.3f}",\n         "y" : "{y:.3f}"\n      }}'
        for name, x, y in pieces
    )
    return BOARD_QML.format(W=W, H=H, pieces=body)


# ---------------------------------------------------------------------------------------------


class RccTest(unittest.TestCase):
    def test_reads_plain_and_compressed_files_in_nested_folders(self):
        files = {
            "a/readme.txt": b"plain text, stored as is",
            "a/b/data.bin": bytes(range(256)) * 40,
            "top.qml": b"QtObject {}",
        }
        for version in (1, 2, 3):
            with self.subTest(version=version):
                blob = write_rcc(files, compress={"a/b/data.bin"}, version=version)
                self.assertEqual(td.read_rcc(blob), files)
        # The compressed entry really is stored compressed (smaller than its content).
        self.assertLess(len(write_rcc(files, compress={"a/b/data.bin"})), len(write_rcc(files)))

    def test_names_the_problem_in_a_bad_archive(self):
        good = write_rcc({"x/y.txt": b"hello"})
        with self.assertRaisesRegex(td.DataError, r"t\.rcc: not a Qt resource archive"):
            td.read_rcc(b"PK\x03\x04" + good[4:], "t.rcc")
        with self.assertRaisesRegex(td.DataError, "unsupported resource format version 9"):
            td.read_rcc(good[:4] + struct.pack(">I", 9) + good[8:])
        with self.assertRaisesRegex(td.DataError, "outside the"):
            td.read_rcc(good[: len(good) - 10])
        # A zstd-compressed entry (flag 4) is refused by name.
        zstd = bytearray(write_rcc({"z.bin": b"abc"}))
        tree_off = struct.unpack_from(">I", zstd, 8)[0]
        struct.pack_into(">H", zstd, tree_off + 22 + 4, 4)
        with self.assertRaisesRegex(td.DataError, "z.bin is zstd-compressed"):
            td.read_rcc(bytes(zstd))

    def test_qt_uncompress_checks_the_length(self):
        self.assertEqual(td.qt_uncompress(struct.pack(">I", 5) + zlib.compress(b"hello")), b"hello")
        with self.assertRaisesRegex(td.DataError, "inflates to 5 bytes, header says 6"):
            td.qt_uncompress(struct.pack(">I", 6) + zlib.compress(b"hello"))
        with self.assertRaisesRegex(td.DataError, "does not inflate"):
            td.qt_uncompress(struct.pack(">I", 5) + b"not zlib")


class BoardTest(unittest.TestCase):
    def test_parse_board(self):
        qml = board_qml(702, 515, [("image/p_1.webp", 0.25, 0.5), ("image/p_2.webp", 0.75, 0.5)])
        b = td.parse_board(qml)
        self.assertEqual(b.title, "Test Painter, Two Tiles - 1900")
        self.assertEqual((b.width, b.height, b.background), (702, 515, None))
        self.assertEqual(
            [(p.image, p.x, p.y) for p in b.pieces],
            [("image/p_1.webp", 0.25, 0.5), ("image/p_2.webp", 0.75, 0.5)],
        )
        with self.assertRaisesRegex(td.DataError, "no 'levels' list"):
            td.parse_board("QtObject {}")

    def reassembled(self, painting, at, W, H, nudge):
        """Cut `painting` into two tiles, place it at `at` on a W×H canvas, write the board with
        the right tile's centre nudged by `nudge` px (the package's rounding), pack it all in an
        .rcc, read it back and reassemble."""
        (lt, lp), (rt, rp) = cut_two_tiles(painting, split_x=painting.size[0] // 2, overlap=2)
        pieces = []
        for name, tile, (px, py), dx in (
            ("image/t_1.webp", lt, lp, 0.0),
            ("image/t_2.webp", rt, rp, nudge),
        ):
            cx = at[0] + px + tile.size[0] / 2 + dx
            cy = at[1] + py + tile.size[1] / 2
            pieces.append((name, cx / W, cy / H))
        files = {
            "res/board/board1_0.qml": board_qml(W, H, pieces).encode(),
            "res/image/t_1.webp": webp_lossless(lt),
            "res/image/t_2.webp": webp_lossless(rt),
        }
        archive = td.read_rcc(write_rcc(files, compress={"res/board/board1_0.qml"}))
        board = td.parse_board(archive["res/board/board1_0.qml"].decode())
        images = {p.image: Image.open(io.BytesIO(archive["res/" + p.image])) for p in board.pieces}
        return td.reassemble(board, images)

    def test_two_tiles_reassemble_to_the_exact_painting(self):
        painting = noise_image(60, 40, seed=1)
        # The right tile's centre is off by 1.4 px: rounding the board's numbers alone would
        # put it a pixel away; its overlap with the left tile puts it back.
        r = self.reassembled(painting, at=(20, 10), W=100, H=60, nudge=1.4)
        self.assertEqual(r.holes, 0)
        self.assertEqual(r.box, (20, 10, 80, 50))
        self.assertEqual(r.positions, [(20, 10), (50, 10)])
        self.assertEqual(r.image.size, painting.size)
        self.assertEqual(r.image.tobytes(), painting.tobytes())
        self.assertEqual(r.overlap, 2 * 40)
        self.assertEqual(r.mismatch, 0.0)

    def test_rounded_positions_alone_would_misplace_the_tile(self):
        # The check above is not vacuous: at the rounded nominal position the overlap disagrees.
        painting = noise_image(60, 40, seed=2)
        (lt, _), (rt, _) = cut_two_tiles(painting, 30, 2)
        placement = td._Placement([lt, rt], [(0.0, 0.0), (31.4, 0.0)], {0})
        total, count = placement.pair(0, 1, 31, 0)
        self.assertGreater(total / count, 10)
        total, count = placement.pair(0, 1, 30, 0)
        self.assertEqual(total, 0.0)

    def test_a_gap_is_filled_from_its_neighbours(self):
        canvas = Image.new("RGB", (3, 3), (10, 20, 30))
        canvas.putpixel((1, 1), (0, 0, 0))
        canvas.putpixel((0, 0), (100, 20, 30))
        coverage = Image.new("L", (3, 3), 255)
        coverage.putpixel((1, 1), 0)
        self.assertEqual(td._fill_holes(canvas, coverage), 1)
        self.assertEqual(canvas.getpixel((1, 1)), (round((100 + 7 * 10) / 8), 20, 30))

    def test_boards_with_a_background_are_refused(self):
        b = td.Board(
            title="t",
            width=None,
            height=None,
            background="image/bg.webp",
            pieces=[td.Piece("a", 0.5, 0.5)],
        )
        with self.assertRaisesRegex(
            td.DataError, "boards with a background image are not reassembled"
        ):
            td.reassemble(b, {})


class SplitTest(unittest.TestCase):
    def items(self):
        return [
            (f"{s}-{i:03d}.jpg", s) for s, n in (("a", 50), ("b", 9), ("c", 3)) for i in range(n)
        ]

    def test_deterministic_disjoint_and_stratified(self):
        items = self.items()
        pinned = {"b-004.jpg"}
        splits = td.assign_splits(items, 0.12, pinned)
        shuffled = list(items)
        random.Random(5).shuffle(shuffled)
        self.assertEqual(td.assign_splits(shuffled, 0.12, pinned), splits)
        self.assertEqual(set(splits), {n for n, _ in items})
        self.assertEqual(set(splits.values()), {"train", "heldout"})
        held = {s: sum(splits[n] == "heldout" for n, st in items if st == s) for s in "abc"}
        self.assertEqual(held, {"a": 6, "b": 1, "c": 0})  # round(0.12·50); 1 (pinned); 0 of 3
        self.assertEqual(splits["b-004.jpg"], "heldout")
        # Which ones are held out depends on the names' hashes, not on their order.
        chosen = sorted((n for n, s in items if s == "a"), key=td.split_key)[:6]
        self.assertEqual({n for n, s in items if s == "a" and splits[n] == "heldout"}, set(chosen))

    def test_refuses_duplicate_or_unknown_names(self):
        with self.assertRaisesRegex(td.DataError, "duplicate names"):
            td.assign_splits([("x.jpg", "a"), ("x.jpg", "b")], 0.12, set())
        with self.assertRaisesRegex(td.DataError, "not among the items"):
            td.assign_splits([("x.jpg", "a")], 0.12, {"y.jpg"})


class CreditsTest(unittest.TestCase):
    README = """Copyright: Timothée Giet, 2022
License: CC-BY-SA 4.0
Files:
transparent_square.svg

Copyright: Dietmar Rabich / Wikimedia Commons
Source: https://commons.wikimedia.org/wiki/File:Alpakas.jpg
License: CC-BY-SA-4.0
Comments: cropping, sharpening
Files: alpaca.webp

Copyright: 2000, 2008 Bruno Coudoin and others
License: Public domain
Gogh4_0.webp
Gogh4_background.webp
Comment: based on an original painting by Van Gogh, Public domain image.

Copyright: Berthold Werner
License: Public Domain
Source: https://commons.wikimedia.org/wiki/File:Trier.JPG
Files:
germany/audaPalatina.webp
"""

    def test_readme_paragraph_forms(self):
        credits = td.parse_readme_credits(self.README)
        self.assertEqual(len(credits), 4)
        c, listed = td.find_readme_credit("alpaca.webp", credits)
        self.assertEqual(
            (c.copyright, c.license, c.source, c.comment),
            (
                "Dietmar Rabich / Wikimedia Commons",
                "CC-BY-SA-4.0",
                "https://commons.wikimedia.org/wiki/File:Alpakas.jpg",
                "cropping, sharpening",
            ),
        )
        c, _ = td.find_readme_credit("Gogh4_background.webp", credits)
        self.assertEqual(
            (c.license, c.comment),
            ("Public domain", "based on an original painting by Van Gogh, Public domain image."),
        )
        # A name one typing slip away, naming no file that exists, is the file's credit.
        c, listed = td.find_readme_credit(
            "germany/aulaPalatina.webp", credits, {"germany/aulaPalatina.webp"}
        )
        self.assertEqual((c.copyright, listed), ("Berthold Werner", "germany/audaPalatina.webp"))
        # ... but not when the listed name is a file of its own.
        c, _ = td.find_readme_credit(
            "germany/aulaPalatina.webp", credits, {"germany/audaPalatina.webp"}
        )
        self.assertIsNone(c)
        self.assertIsNone(td.find_readme_credit("zebra.webp", credits)[0])

    def test_debian_copyright(self):
        text = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2018, Someone
License: GPL-3+

Files: 16.04/aitzgorri_by_Aitzol_Berasategi.jpg
 16.04/life_by_Aitzol_Berasategi.jpg
Copyright: Aitzol Berasategi, 2018
License: CC-BY-4.0
 Licence text that is not the name.

Files: src/activities/tools/screwDriver.jpg
Copyright: Dmitry G
License: public-domain
"""
        credits = td.parse_debian_copyright(text)
        c = td.find_debian_credit("life_by_Aitzol_Berasategi.jpg", credits)
        self.assertEqual((c.copyright, c.license), ("Aitzol Berasategi, 2018", "CC-BY-4.0"))
        self.assertEqual(
            td.find_debian_credit("src/activities/tools/screwDriver.webp", credits).license,
            "public-domain",
        )
        self.assertEqual(td.find_debian_credit("other.png", credits).license, "GPL-3+")
        self.assertIsNone(td.find_debian_credit("other.png", credits, specific=True))


class BuildTest(unittest.TestCase):
    """The whole build on a fake package tree: two 'packages' made here."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        gc = root / "gc"
        (gc / "usr/share/doc/gcompris-qt-data").mkdir(parents=True)
        (gc / "usr/share/doc/gcompris-qt-data/copyright").write_text(
            "Files: *\nCopyright: GCompris\nLicense: GPL-3+\n"
        )
        photos = {
            f"act/res/animals/animal{i}.webp": webp_lossless(
                noise_image(320 + 10 * i, 240, seed=10 + i)
            )
            for i in range(8)
        }
        # The same photo twice (another activity's copy), and one too small to keep.
        photos["act/res/animals/copy.webp"] = photos["act/res/animals/animal3.webp"]
        photos["act/res/animals/tiny.webp"] = webp_lossless(noise_image(200, 120, seed=99))
        readme = (
            "\n\n".join(
                f"Copyright: Photographer {i}\nLicense: CC0-1.0\nSource: https://example.org/{i}.jpg\nFiles:\nanimal{i}.webp"
                for i in range(8)
            )
            + "\n\nCopyright: Another\nLicense: CC0-1.0\nFiles:\ncopy.webp\ntiny.webp\n"
        )
        photos["act/res/animals/README"] = readme.encode()
        cls.painting = noise_image(60, 40, seed=7)
        (lt, lp), (rt, rp) = cut_two_tiles(cls.painting, 30, 2)
        W, H = 100, 60
        pieces = [
            ("image/t_1.webp", (20 + lt.size[0] / 2) / W, (10 + 20) / H),
            ("image/t_2.webp", (50 + rt.size[0] / 2 + 0.6) / W, (10 + 20) / H),
        ]
        paint = {
            "pt/res/board/board1_0.qml": board_qml(W, H, pieces).encode(),
            "pt/res/image/t_1.webp": webp_lossless(lt),
            "pt/res/image/t_2.webp": webp_lossless(rt),
            "pt/res/image/README": b"Copyright: WebMuseum\nLicense: GPLv3 or later\nFiles:\n  t_1.webp\n  t_2.webp\n",
            # With a colour profile (sRGB, so the pixels stay as they are).
            "pt/res/image/whole.webp": webp_lossless(cls.painting, icc=srgb_profile()),
        }
        rcc_dir = gc / "usr/share/gcompris-qt/rcc"
        rcc_dir.mkdir(parents=True)
        (rcc_dir / "animals.rcc").write_bytes(
            write_rcc(photos, compress={"act/res/animals/README"})
        )
        (rcc_dir / "paint.rcc").write_bytes(write_rcc(paint))
        cv = root / "cv"
        data = cv / "usr/share/doc/opencv-doc/examples/data"
        data.mkdir(parents=True)
        (cv / "usr/share/doc/opencv-doc/copyright").write_text(
            "Files: *\nCopyright: OpenCV\nLicense: Apache-2.0\n"
        )
        (data / "big.jpg").write_bytes(jpeg(noise_image(1600, 1000, seed=3)))
        (data / "other.jpg").write_bytes(jpeg(noise_image(400, 300, seed=4)))
        (data / "night.jpg").write_bytes(jpeg(noise_image(75, 60, seed=5)))
        painting = td.Painting(
            "two-tiles.png", "Test Painter", "Two Tiles", "1900", "1901", "artist died 1901"
        )
        cls.catalogue = td.Catalogue(
            gcompris_package="gcompris-qt-data",
            gcompris_rcc_dir="usr/share/gcompris-qt/rcc",
            gcompris_photos=[td.GcomprisPhotos("animals", "animals.rcc", "act/res/animals")],
            plain_photos=[
                td.PlainPhotos(
                    "cv",
                    "opencv-doc",
                    "usr/share/doc/opencv-doc/examples/data",
                    ("big.jpg", "other.jpg"),
                    "usr/share/doc/opencv-doc/copyright",
                )
            ],
            gcompris_styles=[
                td.GcomprisStyle(painting, "paint.rcc", "pt/res", board="board/board1_0.qml"),
                td.GcomprisStyle(
                    td.Painting(
                        "whole.png", "Test Painter", "Whole", "", "1901", "artist died 1901"
                    ),
                    "paint.rcc",
                    "pt/res",
                    image="image/whole.webp",
                ),
            ],
            plain_styles=[
                td.PlainStyle(
                    td.Painting("night.jpg", "P", "Night", "1889", "1890", "artist died 1890"),
                    "opencv-doc",
                    "usr/share/doc/opencv-doc/examples/data/night.jpg",
                )
            ],
            eval_photos=("animals-animal5.jpg",),
        )
        cls.packages = {
            "gcompris-qt-data": td.Package("gcompris-qt-data", "3.1-2", gc),
            "opencv-doc": td.Package("opencv-doc", "4.6.0", cv),
        }
        cls.out = root / "out"
        cls.out.mkdir()
        cls.result = td.Builder(cls.catalogue, cls.packages, cls.out).build()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def files(self, folder):
        return sorted(p.name for p in (self.out / folder).iterdir())

    def test_splits_never_mix_and_eval_is_held_out(self):
        train, held = set(self.files("content/train")), set(self.files("content/heldout"))
        self.assertFalse(train & held)
        self.assertEqual(
            train | held,
            {f"animals-animal{i}.jpg" for i in range(8)} | {"cv-big.jpg", "cv-other.jpg"},
        )
        self.assertIn("animals-animal5.jpg", held)  # pinned
        self.assertEqual(len(held), 1)  # round(0.12 · 8) = 1 animal, 0 of the 2 cv photos
        self.assertEqual(self.files("content/heldout-eval"), ["animals-animal5.jpg"])
        skipped = dict(self.result["skipped"])
        self.assertEqual(
            skipped["usr/share/gcompris-qt/rcc/animals.rcc:act/res/animals/tiny.webp"],
            "200x120: shorter side below 180 px",
        )
        self.assertEqual(
            skipped["usr/share/gcompris-qt/rcc/animals.rcc:act/res/animals/copy.webp"],
            "the same photo as animals-animal3.jpg",
        )

    def test_photos_are_scaled_and_converted(self):
        split = "train" if (self.out / "content/train/cv-big.jpg").exists() else "heldout"
        with Image.open(self.out / f"content/{split}/cv-big.jpg") as big:
            self.assertEqual((big.format, big.mode, big.size), ("JPEG", "RGB", (1229, 768)))
        small = next((self.out / "content").glob("*/animals-animal0.jpg"))
        original = noise_image(320, 240, seed=10)
        with Image.open(small) as f:
            im = f.convert("RGB")
        self.assertEqual(im.size, (320, 240))
        # JPEG q95 of a lossless source: close to the original pixels.
        diff = sum(abs(a - b) for a, b in zip(im.convert("RGB").tobytes(), original.tobytes())) / (
            320 * 240 * 3
        )
        self.assertLess(diff, 6)

    def test_styles(self):
        self.assertEqual(self.files("styles"), ["night.jpg", "two-tiles.png", "whole.png"])
        for name in ("two-tiles.png", "whole.png"):
            with Image.open(self.out / "styles" / name) as im:
                # Converted to sRGB, with no profile (Pillow's would carry the time of the run).
                self.assertNotIn("icc_profile", im.info)
                self.assertEqual(
                    (im.format, im.convert("RGB").tobytes()), ("PNG", self.painting.tobytes()), name
                )
        src = self.packages["opencv-doc"].root / "usr/share/doc/opencv-doc/examples/data/night.jpg"
        self.assertEqual((self.out / "styles/night.jpg").read_bytes(), src.read_bytes())
        self.assertEqual(
            [(s["file"], s["holes"], s["mismatch"]) for s in self.result["styles"]],
            [("two-tiles.png", 0, 0.0), ("whole.png", 0, None), ("night.jpg", 0, None)],
        )

    def test_attribution_rows(self):
        with open(self.out / "attribution.tsv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        on_disk = sorted(
            str(p.relative_to(self.out))
            for p in self.out.rglob("*")
            if p.is_file() and p.parts[-2] in ("train", "heldout", "styles")
        )
        self.assertEqual(sorted(r["file"] for r in rows), on_disk)
        by_file = {r["file"]: r for r in rows}
        a3 = next(r for r in rows if r["file"].endswith("animals-animal3.jpg"))
        self.assertEqual(
            (
                a3["package"],
                a3["version"],
                a3["source_path"],
                a3["author"],
                a3["license"],
                a3["origin"],
                a3["split"],
            ),
            (
                "gcompris-qt-data",
                "3.1-2",
                "usr/share/gcompris-qt/rcc/animals.rcc:act/res/animals/animal3.webp",
                "Photographer 3",
                "CC0-1.0",
                "https://example.org/3.jpg",
                a3["file"].split("/")[1],
            ),
        )
        big = next(r for r in rows if r["file"].endswith("cv-big.jpg"))
        self.assertEqual(
            (big["license"], big["source_size"], big["size"]),
            ("Apache-2.0", "1600x1000", "1229x768"),
        )
        self.assertIn("scaled to a 768 px shorter side", big["notes"])
        style = by_file["styles/two-tiles.png"]
        self.assertEqual(
            (style["author"], style["title"], style["size"]),
            ("Test Painter", "Two Tiles, 1900", "60x40"),
        )
        self.assertEqual(
            style["license"],
            "Public domain (artist died 1901); the package's copy: GPLv3 or later (activity README)",
        )
        self.assertIn("reassembled from 2 pieces", style["notes"])
        self.assertEqual(
            by_file["styles/night.jpg"]["license"],
            "Public domain (artist died 1890); the package's copy: Apache-2.0 (Debian copyright file)",
        )
        md = (self.out / "ATTRIBUTION.md").read_text(encoding="utf-8")
        for r in rows:
            self.assertIn(f"`{r['file']}`", md)
        self.assertIn("| animals | 7 | 1 |", md)
        self.assertTrue(
            (
                self.out
                / "sources/gcompris-qt-data/gcompris-qt/rcc/animals.rcc/act/res/animals/README"
            ).is_file()
        )
        self.assertTrue((self.out / "sources/opencv-doc/doc/opencv-doc/copyright").is_file())

    def test_same_output_twice(self):
        out2 = Path(self.tmp.name) / "out2"
        out2.mkdir()
        td.Builder(self.catalogue, self.packages, out2).build()
        digest = lambda d: {
            str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in d.rglob("*")
            if p.is_file()
        }
        self.assertEqual(digest(self.out), digest(out2))


if __name__ == "__main__":
    unittest.main()
