"""Progress bars (tqdm), silent when disabled or when stderr is not a terminal and FAKEWATCH_NO_PROGRESS is set."""
from __future__ import annotations

import os
from typing import Any, Iterable


def bar(it: Iterable[Any] | None = None, **kw: Any):
    from tqdm.auto import tqdm

    if os.environ.get("FAKEWATCH_NO_PROGRESS"):
        kw["disable"] = True
    kw.setdefault("dynamic_ncols", True)
    kw.setdefault("leave", False)
    return tqdm(it, **kw)
