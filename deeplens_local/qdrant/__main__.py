"""``python -m deeplens_local.qdrant --host 127.0.0.1 --port 16333 --data-dir PATH
[--api-key-file FILE]``"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from deeplens_local.qdrant.app import create_app
from deeplens_local.qdrant.store import DEFAULT_OPTIMIZE_DELAY


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deeplens_local.qdrant",
        description="A local server speaking Qdrant's REST API, backed by qdrant-edge.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument(
        "--optimize-delay",
        type=float,
        default=DEFAULT_OPTIMIZE_DELAY,
        help="seconds without writes before a collection's optimizer (HNSW indexing) runs",
    )
    parser.add_argument(
        "--api-key-file",
        type=Path,
        help="require the API key read from this file (as Qdrant's service.api_key does)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    api_key = args.api_key_file.read_text().strip() if args.api_key_file else None
    app = create_app(args.data_dir.resolve(), args.optimize_delay, api_key)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
