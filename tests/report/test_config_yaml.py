"""The report's YAML config goes through the project's one safe YAML loader."""

import time

import pytest

from qa.report.config import load_config


def test_yaml_alias_bomb_config_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    p = tmp_path / "checks.yaml"
    p.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"checks\.yaml.*alias"):
        load_config(p)
    assert time.perf_counter() - t0 < 5


def test_yaml_config_override_still_works(tmp_path):
    p = tmp_path / "checks.yaml"
    p.write_text("checks:\n  rare_classes:\n    warn: 0.2\n")
    cfg = load_config(p)
    assert next(c for c in cfg.checks if c.id == "rare_classes").warn == 0.2
