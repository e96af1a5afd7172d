"""Entry point: read settings from the environment (and .env), build the playground, serve it."""

from dotenv import load_dotenv

from playground.settings import Settings
from playground.ui.app import launch


def main() -> None:
    load_dotenv()
    launch(Settings.from_env())


if __name__ == "__main__":
    main()
