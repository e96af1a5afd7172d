"""Entry point: read settings from the environment (and .env), build the playground, serve it.

`python app.py [--host H] [--port P] [--share]`; the host and port default to GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT (as a Space sets them), else 127.0.0.1:7860. It prints one line saying where it
listens (and the public link with --share).

Engine worker processes are started with `spawn`, which imports this file again in each of them as
`__mp_main__`: so nothing heavy is imported at its top, and nothing runs outside `main()`.
"""

from __future__ import annotations

import argparse

from dotenv import load_dotenv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the SLM Playground.")
    parser.add_argument("--host", help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from playground.settings import Settings
    from playground.ui.app import launch

    load_dotenv()
    launch(Settings.from_env(), host=args.host, port=args.port, share=args.share)


if __name__ == "__main__":
    main()
