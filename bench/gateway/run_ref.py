"""Run ``python -m app`` from another source tree (``--before REF`` in bench_gateway.py), as it ran then.

``python bench/gateway/run_ref.py SRC [python -m app arguments]``: imports ``app`` from ``SRC`` (a
``git archive`` of the ref) instead of this checkout. With ``RUN_REF_SERVER=asyncio-h11`` uvicorn is forced
onto asyncio + h11, the defaults before uvloop and httptools became dependencies (uvicorn's ``auto`` would
pick them up from this venv); otherwise it runs as installed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

src = sys.argv[1]
sys.path.insert(0, src)

import uvicorn  # noqa: E402

_run = uvicorn.run


def _run_as_then(app: Any, **kwargs: Any) -> None:
    _run(app, **{**kwargs, "loop": "asyncio", "http": "h11"})


if os.environ.get("RUN_REF_SERVER") == "asyncio-h11":
    uvicorn.run = _run_as_then  # type: ignore[assignment]

from app.__main__ import main  # noqa: E402

sys.argv = ["python -m app", *sys.argv[2:]]
sys.exit(main())
