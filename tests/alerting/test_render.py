"""The test-only rendering only shortens `for:`; every other field of every rule is the shipped one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.alerting.render import render_test_alertmanager, render_test_rules, seconds
from tests.alerting.rules import RULES_DIR


def test_seconds() -> None:
    assert seconds("4m30s") == 270
    assert seconds("1h") == 3600
    assert seconds("500ms") == 0.5
    with pytest.raises(ValueError):
        seconds("5 minutes")


def test_rendered_rules_differ_from_the_shipped_ones_only_in_shorter_for(tmp_path: Path) -> None:
    render_test_rules(tmp_path, max_for="5s")
    shortened = 0
    for shipped_path in sorted(RULES_DIR.glob("*.yml")):
        shipped = yaml.safe_load(shipped_path.read_text())
        rendered = yaml.safe_load((tmp_path / shipped_path.name).read_text())
        for g_ship, g_test in zip(shipped["groups"], rendered["groups"], strict=True):
            assert g_ship["name"] == g_test["name"]
            for r_ship, r_test in zip(g_ship["rules"], g_test["rules"], strict=True):
                f_ship, f_test = r_ship.pop("for", None), r_test.pop("for", None)
                assert r_ship == r_test
                if f_ship is not None:
                    assert f_test is not None and seconds(f_test) == min(seconds(f_ship), 5)
                    shortened += f_ship != f_test
                else:
                    assert f_test is None
    assert shortened > 10


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool comes with `make tools`")
def test_rendered_alertmanager_config_is_valid(tmp_path: Path) -> None:
    out = render_test_alertmanager(tmp_path, "http://127.0.0.1:9")
    result = subprocess.run(["amtool", "check-config", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
