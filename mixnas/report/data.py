"""A finished (or running) run, read back from its folder for reports and export."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixnas.config import SearchConfig, parse_config
from mixnas.front import best, front
from mixnas.manifest import CONFIG, MANIFEST, read_json
from mixnas.records import DB_NAME, RunStore, TrialRecord
from search_space.errors import MixnasError


class NotARunError(MixnasError, ValueError):
    """The folder is not a mixnas run folder."""


@dataclass
class RunData:
    run_dir: Path
    config: SearchConfig
    manifest: dict[str, Any]
    records: list[TrialRecord]

    @staticmethod
    def load(run_dir: Path) -> RunData:
        if not (run_dir / DB_NAME).is_file() or not (run_dir / CONFIG).is_file():
            raise NotARunError(f"{run_dir}: not a mixnas run folder (no {DB_NAME} / {CONFIG})")
        config = parse_config(read_json(run_dir / CONFIG), source=str(run_dir / CONFIG))
        manifest = read_json(run_dir / MANIFEST) if (run_dir / MANIFEST).is_file() else {}
        with RunStore(run_dir) as store:
            records = store.records()
        return RunData(run_dir, config, manifest, records)

    @property
    def objectives(self) -> tuple[Any, ...]:
        return self.config.objectives

    def front(self) -> list[TrialRecord]:
        return front(self.records, self.config.objectives, self.config.constraints)

    def best(self) -> TrialRecord | None:
        return best(self.records, self.config.objectives, self.config.constraints)

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.records)

    def by_id(self, trial_id: int) -> TrialRecord | None:
        return next((r for r in self.records if r.trial_id == trial_id), None)


def describe_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A readable summary of a spec: mixers per stage, depths, widths, bits per stage."""
    stages = spec.get("stages", [])
    mixers, bits = [], []
    for st in stages:
        names = [b["token_mixer"]["name"] for b in st.get("blocks", [])]
        mixers.append("+".join(dict.fromkeys(names)) or "-")
        policies = [_bits(b.get("quant")) for b in st.get("blocks", [])]
        bits.append("+".join(dict.fromkeys(policies)) or "-")
    return {
        "mixers": " | ".join(mixers),
        "depths": "-".join(str(len(st.get("blocks", []))) for st in stages),
        "widths": "-".join(str(st.get("width", "?")) for st in stages),
        "bits": " | ".join(bits),
    }


def _bits(quant: dict[str, Any] | None) -> str:
    if not quant:
        return "fp32"
    return f"w{quant.get('weight_bits', 32)}a{quant.get('act_bits', 32)}"
