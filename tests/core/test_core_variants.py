from __future__ import annotations

import pytest

from fakewatch.core.variants import VARIANTS, UnknownVariantError, format_table, list_variants, resolve_variant


def test_table_has_every_variant_at_native_size():
    sizes = {f"b{i}": s for i, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))}
    for name, size in sizes.items():
        assert VARIANTS[name].input_size == size
        assert VARIANTS["tf-" + name].input_size == size
        assert VARIANTS["tf-" + name].same_padding
    assert [VARIANTS[f"lite{i}"].input_size for i in range(5)] == [224, 240, 260, 280, 300]
    assert len(list_variants()) == 21


@pytest.mark.parametrize("name, expected", [
    ("b0", "efficientnet_b0"), ("B3", "efficientnet_b3"), ("tf-b4", "tf_efficientnet_b4"),
    ("tf_efficientnet_b4", "tf_efficientnet_b4"), ("lite0", "efficientnet_lite0"),
    ("efficientnet-lite2", "efficientnet_lite2"),
])
def test_resolve_names(name, expected):
    assert resolve_variant(name).timm_name == expected


def test_unknown_variant_lists_close_matches():
    with pytest.raises(UnknownVariantError) as err:
        resolve_variant("lite9")
    msg = str(err.value)
    assert "unknown variant 'lite9'" in msg and "lite0" in msg and "fakewatch export --list" in msg


def test_format_table_lists_all():
    table = format_table()
    assert "tf_efficientnet_b7" in table and "600x600" in table and "efficientnet_lite4" in table
    assert "test_efficientnet" not in table
