"""The README's Python blocks run as written (a newcomer copies them), and its links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_is_short_and_has_a_quickstart():
    assert len(README.splitlines()) <= 150
    assert BLOCKS, "no Python block in the README"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, capsys):
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)
    if "res" in namespace:  # the quickstart: a converged geodesic, no longer than the straight line
        res = namespace["res"]
        assert res.status == "converged"
        assert res.length <= res.straight_length * (1 + 1e-8)
        assert namespace["images"].shape == (8, 8, 8) and namespace["G"].shape == (len(res.nodes), 2, 2)
        assert "converged: length" in capsys.readouterr().out


def test_the_readmes_local_links_exist():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target
