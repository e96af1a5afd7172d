"""Entry point: read settings from the environment (and .env), build the playground, serve it.

Engine worker processes are started with `spawn`, which imports this file again in each of them as
`__mp_main__`: so nothing heavy is imported at its top, and nothing runs outside `main()`.
"""

from dotenv import load_dotenv


def main() -> None:
    from playground.settings import Settings
    from playground.ui.app import launch

    load_dotenv()
    launch(Settings.from_env())


if __name__ == "__main__":
    main()
