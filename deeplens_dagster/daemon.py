"""`dagster-daemon` whose backfill loop comes round every `DEEPLENS_BACKFILL_INTERVAL_SECONDS`
(2 by default) instead of every 30 s: ``python -m deeplens_dagster.daemon run -w workspace.yaml``
takes the same arguments as ``dagster-daemon``.

Speed exception (a private constant set; see the project's style notes):
- Buys: an asset backfill launched from the UI (a reindex, a model migration) has its run
  requested within about 2 s rather than up to 30 s, and is marked complete as soon after its
  runs end; measured on a 33-image tenant the 30 s wait was most of the backfill's time.
- Why not the public API: the backfill daemon sleeps `DEFAULT_DAEMON_INTERVAL_SECONDS` of
  `dagster._daemon.controller` between iterations; no instance setting exposes it. The asset
  daemon also reads it, unless `auto_materialize.minimum_interval_seconds` is set (dagster.yaml
  sets it, so the asset daemon keeps its 30 s).
- Upstream: none filed; a `backfills: daemon_interval_seconds` instance setting would do.
- To remove: run `dagster-daemon run` (backfills then start within 30 s).
"""

from __future__ import annotations

import os

from dagster._daemon import controller
from dagster._daemon.cli import main as daemon_main

INTERVAL_ENV = "DEEPLENS_BACKFILL_INTERVAL_SECONDS"


def main() -> None:
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = int(os.environ.get(INTERVAL_ENV, "2"))
    daemon_main()


if __name__ == "__main__":
    main()
