"""The ``data`` settings: how bar files are read and which bars are believed."""

from __future__ import annotations

import pytest

from config.settings import DEFAULT_MAX_BAR_MOVE_PCT, SettingsError, load_settings


def test_defaults_read_iso_detect_epochs_and_drop_bad_prints():
    data = load_settings().data
    assert data.date_format is None and data.epoch_unit is None
    assert data.max_bar_move_pct == DEFAULT_MAX_BAR_MOVE_PCT == 50.0
    assert data.outlier_action == "drop"


@pytest.mark.parametrize("fmt", ["iso", "dayfirst", "monthfirst", "%d/%m/%Y %H:%M"])
def test_known_date_formats(fmt):
    assert load_settings(data={"date_format": fmt}).data.date_format == fmt


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"date_format": "dd/mm/yyyy"}, "data.date_format"),
        ({"epoch_unit": "minutes"}, "data.epoch_unit"),
        ({"max_bar_move_pct": 0}, "data.max_bar_move_pct"),
        ({"outlier_action": "ignore"}, "data.outlier_action"),
    ],
)
def test_bad_data_settings_are_named(data, needle):
    with pytest.raises(SettingsError, match=needle):
        load_settings(data=data)


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("TRADER_DATA__MAX_BAR_MOVE_PCT", "20")
    monkeypatch.setenv("TRADER_DATA__DATE_FORMAT", "dayfirst")
    data = load_settings().data
    assert data.max_bar_move_pct == 20.0 and data.date_format == "dayfirst"
