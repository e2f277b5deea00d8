"""Settings are declared once (streams/settings.py); README's table is generated from it."""
import re
from dataclasses import fields
from pathlib import Path

import pytest

from distillguard.streams.settings import (ENV_VARS, SETTINGS, Settings, SettingsError, describe, load_settings,
                                           markdown_table)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_settings_table_is_the_generated_one():
    text = README.read_text()
    table = "\n".join(line for line in text[text.index("| variable | default | meaning |"):].splitlines()
                      if line.startswith("|") or not line.strip()).strip()
    table = table.split("\n\n")[0]
    assert table == markdown_table(), (
        "README's settings table differs from the declaration: regenerate it with "
        "`python -m distillguard.streams.settings` and paste it under ## Settings")


def test_every_field_is_a_declared_setting_with_a_unique_env_name():
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names)) == len(fields(Settings))
    assert all(re.fullmatch(r"DG_[A-Z0-9_]+", n) for n in names)
    assert set(ENV_VARS) == set(names)


def test_defaults_derived_values_and_secrets():
    s = load_settings({"DG_APP_ID": "x", "DG_DATA_DIR": "/tmp/dg"})
    assert s.topic_links == "x.links" and s.topic_cluster == "x.cluster"
    assert s.clickhouse_dsn == "chdb:///tmp/dg/clickhouse" and s.partitions == 4 and s.sink is True
    assert s.dev_fingerprint_key and "development default" in describe(s)
    t = load_settings({"DG_FINGERPRINT_KEY": "k3y-secret", "DG_CLICKHOUSE_DSN": "http://u:pw@h:8123/db"})
    text = describe(t)
    assert "k3y-secret" not in text and "pw@" not in text and "***" in text


@pytest.mark.parametrize("env, named", [
    ({"DG_PARTITIONS": "many"}, "DG_PARTITIONS"), ({"DG_PARTITIONS": "0"}, "DG_PARTITIONS"),
    ({"DG_SINK": "maybe"}, "DG_SINK"), ({"DG_LOG_FORMAT": "xml"}, "DG_LOG_FORMAT"),
    ({"DG_CLICKHOUSE_DSN": "mysql://u:pw@h/db"}, "DG_CLICKHOUSE_DSN"),
    ({"DG_STARTUP_TIMEOUT_S": "-1"}, "DG_STARTUP_TIMEOUT_S")])
def test_bad_values_name_the_setting_and_hide_secrets(env, named):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert named in str(err.value) and "pw@" not in str(err.value)
