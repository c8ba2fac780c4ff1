"""--fresh-draws: every sampled item gets its own fake, still reproducible; without it an epoch repeats fakes."""
from __future__ import annotations

import pytest

from fakewatch.training.draws import DrawSampler, record_of


def test_draw_sampler_numbers_every_draw_and_keeps_the_record():
    picks = [3, 3, 0, 3, 1]
    out = list(DrawSampler(picks, n=4))
    assert out == [3, 7, 8, 15, 17]
    assert [record_of(i, 4) for i in out] == picks
    assert len(DrawSampler(picks, n=4)) == 5
    with pytest.raises(ValueError, match="at least one record"):
        DrawSampler(picks, n=0)
