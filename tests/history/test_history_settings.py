from __future__ import annotations

from pathlib import Path

import pytest

from playground.errors import ConfigError
from playground.settings import Settings


def test_defaults_live_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    assert settings.history_path == tmp_path / "history.db"
    assert (settings.history_max_age_days, settings.history_max_count) == (None, None)


def test_history_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PLAYGROUND_DATA_DIR": str(tmp_path),
            "PLAYGROUND_HISTORY_DB": str(tmp_path / "elsewhere.db"),
            "PLAYGROUND_HISTORY_MAX_AGE_DAYS": "30.5",
            "PLAYGROUND_HISTORY_MAX_COUNT": "200",
        }
    )
    assert settings.history_path == tmp_path / "elsewhere.db"
    assert (settings.history_max_age_days, settings.history_max_count) == (30.5, 200)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PLAYGROUND_HISTORY_MAX_AGE_DAYS", "a month", "must be a number"),
        ("PLAYGROUND_HISTORY_MAX_AGE_DAYS", "0", "must be positive"),
        ("PLAYGROUND_HISTORY_MAX_COUNT", "2.5", "must be a whole number"),
        ("PLAYGROUND_HISTORY_MAX_COUNT", "-1", "must be positive"),
    ],
)
def test_bad_retention_values_say_what_to_do(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} {message}.*leave it unset for no limit"):
        Settings.from_env({name: value})
