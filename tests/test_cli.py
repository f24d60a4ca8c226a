"""The command line's JSON contracts and its model summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from search_space import ArchSpec, load_space, spec_cost
from search_space.spaces import SPACES_DIR


def _mixnas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixnas", *args], capture_output=True, text=True, timeout=300
    )


def test_describe_json() -> None:
    result = _mixnas("space", "describe", str(SPACES_DIR / "hybrid.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert isinstance(info["cardinality"], int) and info["cardinality"] >= 10**15
    assert info["cardinality"] == load_space("hybrid").cardinality()
    assert "selective_ssm" in info["mixers"] and "global_filter" in info["mixers"]
    assert all(isinstance(b, int) for b in info["quant_bits"])


def test_sample_json_is_seeded_and_costed() -> None:
    args = ("space", "sample", "isotropic", "-n", "4", "--seed", "11", "--json")
    first, again = _mixnas(*args), _mixnas(*args)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert rows == json.loads(again.stdout)
    assert len(rows) == 4
    for row in rows:
        spec = ArchSpec.from_dict(row["spec"])
        assert spec.id == row["id"]
        cost = spec_cost(spec)
        assert (row["params"], row["macs"], row["bytes"], row["bitops"]) == (
            cost.params,
            cost.macs,
            cost.bytes,
            cost.bitops,
        )


def test_build_rebuilds_a_sampled_spec(tmp_path: Path) -> None:
    spec = load_space("hybrid").sample(3)
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json(indent=2))
    result = _mixnas("build", str(path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["id"] == spec.id
    assert info["params"] == spec_cost(spec).params
    assert info["output_shape"] == [1, 10]
    assert abs(info["macs"] - info["analytic"]["macs"]) <= 0.02 * info["analytic"]["macs"]
    text = _mixnas("build", str(path))
    assert text.returncode == 0 and "params" in text.stdout and spec.id in text.stdout
