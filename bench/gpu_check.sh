#!/usr/bin/env bash
# GPU check: the same small search (space hybrid_cpu, evaluators cost + train on digits, ~20
# trials, local backend with one worker) once with `device: cuda` and once with `device: cpu`;
# writes a markdown table (device, trials, seconds, ms/trial, best top1) to OUT_FILE. Then the
# supernet section: supernet training steps/s on each device, fp32 and bf16 autocast (SPOS on
# bench/supernet.py's space, batch 256, synthetic data), as a second table. Under 8 minutes on
# one H200: each search stops asking at GPU_CHECK_SECONDS (120 s) and a trial already running is
# cut at 60 s, so the two take at most about 6 minutes; the supernet's four cells take about
# 4 x (13 warm-up and sizing steps + 12 s), about a minute and a half.
#
#   bench/gpu_check.sh [OUT_FILE]    default: $OUT/gpu_check.md when $OUT is set, else
#                                    runs/gpu_check.md
#
# Without a GPU it prints one line, "no CUDA device: skipped", and exits 0.
#
# Python: $PYTHON when set, else .venv/bin/python, else python3: the first whose torch sees a
# GPU. The project's .venv (`make .venv/.installed`) holds the CPU build of torch, so on a GPU
# machine this is usually the image's python3 with its CUDA torch, running this checkout through
# PYTHONPATH; mixnas's other imports must be there too (optuna for `strategies`: where the image
# lacks it, install its wheels into a folder first and put that folder on PYTHONPATH).
#
# Knobs: GPU_CHECK_TRIALS (20), GPU_CHECK_SECONDS (120 per search), GPU_CHECK_DEVICES
# ("cuda cpu"; "cpu" alone is a dry run of the whole script on a machine without a GPU),
# GPU_CHECK_SECTIONS ("search supernet train": which tables), GPU_CHECK_SUPERNET_SECONDS (12 per
# supernet cell) and GPU_CHECK_SUPERNET_BATCH (256).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
repo=$PWD
out_file=${1:-${OUT:+$OUT/gpu_check.md}}
[[ -z $out_file || $out_file == /* ]] || out_file=$caller/$out_file
out_file=${out_file:-runs/gpu_check.md}
trials=${GPU_CHECK_TRIALS:-20}
cap=${GPU_CHECK_SECONDS:-120}
devices=${GPU_CHECK_DEVICES:-cuda cpu}
sections=${GPU_CHECK_SECTIONS:-search supernet train}
supernet_cap=${GPU_CHECK_SUPERNET_SECONDS:-12}
supernet_batch=${GPU_CHECK_SUPERNET_BATCH:-256}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

skip() {
    echo "no CUDA device: skipped${1:+ ($1)}"
    exit 0
}

wants_gpu() { [[ " $devices " == *" cuda "* ]]; }

# the first Python whose torch can run the devices asked for
pick_python() {
    local py check='import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'
    wants_gpu || check='import torch'
    for py in ${PYTHON:-} .venv/bin/python python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c "$check" 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

if wants_gpu && ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
    skip
fi
if ! py=$(pick_python); then
    if [[ ! -x .venv/bin/python ]]; then
        make .venv/.installed >&2
    fi
    py=$(pick_python) || skip "no torch here sees the GPU"
fi
if ! error=$("$py" -c 'import mixnas.cli, strategies' 2>&1); then
    echo "gpu_check: $py cannot import mixnas: ${error##*$'\n'}" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# one search on one device; prints "DEVICE WALL_SECONDS" when done
search() {
    local device=$1
    cat >"$work/$device.yaml" <<EOF
name: gpu-check-$device
seed: 0
space: hybrid_cpu
objectives:
  - {metric: top1, direction: maximize}
  - {metric: params, direction: minimize}
evaluators:
  - {name: cost}
  - {name: train, budget: {steps: 20}, data: digits, options: {batch_size: 64}, device: $device}
strategy: {name: nsga2, options: {population_size: 10}}
budget: {trials: $trials, seconds: $cap}
backend: {name: local, workers: 1}
trial_timeout: 60
runs_dir: $work/runs
export: null
EOF
    local start end
    start=$(date +%s.%N)
    "$py" -m mixnas search "$work/$device.yaml" -q >&2
    end=$(date +%s.%N)
    echo "$device $(awk "BEGIN { print $end - $start }")"
}

# the figures of each search, as a markdown table on stdout
table() {
    "$py" - "$work/runs" "$@" <<'EOF'
import csv, os, sys
import torch

runs, rows = sys.argv[1], sys.argv[2:]
print("| device | name | trials ok / run | seconds | ms/trial | best top1 (%) |")
print("| --- | --- | --- | --- | --- | --- |")
for device, wall in zip(rows[::2], rows[1::2]):
    with open(os.path.join(runs, f"gpu-check-{device}", "trials.csv"), newline="") as f:
        trials = list(csv.DictReader(f))
    ok = [t for t in trials if t["status"] == "ok"]
    ms = 1000 * sum(float(t["seconds"]) for t in ok) / max(1, len(ok))
    best = max((float(t["top1"]) for t in ok), default=float("nan"))
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(0)
    else:
        name = f"CPU ({os.cpu_count()} cores)"
    figures = f"{len(ok)} / {len(trials)} | {float(wall):.1f} | {ms:.0f} | {best:.1f}"
    print(f"| {device} | {name} | {figures} |")
EOF
}

# supernet training steps/s on each device, fp32 (amp: off) and bf16 autocast, as a second
# markdown table: the supernet of bench/supernet.py's space on synthetic 16x16 images, SPOS,
# batch $supernet_batch; 3 warm-up steps, 10 to size the run, then as many steps as fit in
# $supernet_cap s (each run starts at step 0 again: its first steps' subnets are built already)
supernet_section() {
    echo
    echo "### Supernet training (SPOS, bench/supernet.py's space, batch $supernet_batch)"
    echo
    "$py" - "$supernet_cap" "$supernet_batch" $devices <<'EOF'
import os, sys, time
import torch
from bench.supernet import SPACE
from evaluators.data import load_dataset
from evaluators.supernet import Supernet
from evaluators.supernet.train import RecipeConfig, train_supernet
from search_space import SearchSpace

cap, batch, devices = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
space = SearchSpace.from_dict(SPACE)
data = load_dataset("synthetic", space.decl.input, seed=0, size=4 * batch)
print("| device | name | amp | steps timed | steps/s | samples/s | last loss |")
print("| --- | --- | --- | --- | --- | --- | --- |")
rates = {}
for device in devices:
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(0)
    else:
        name = f"CPU ({os.cpu_count()} cores)"
    for amp in ("off", "bf16"):
        cfg = RecipeConfig(steps=10**6, batch_size=batch, lr=0.02, device=device, amp=amp)
        supernet = Supernet(space, seed=0)
        train_supernet(supernet, data, cfg, stop_after=3)  # warm-up: CUDA, kernels, allocator
        tick = time.perf_counter()
        train_supernet(supernet, data, cfg, stop_after=10)  # a probe sizes the timed run
        per_step = max(1e-3, (time.perf_counter() - tick) / 10)
        steps = max(10, int(cap / per_step))
        tick = time.perf_counter()
        out = train_supernet(supernet, data, cfg, stop_after=steps)  # loss.item() syncs a step
        rate = steps / (time.perf_counter() - tick)
        rates[device, amp] = rate
        figures = f"{steps} | {rate:.1f} | {rate * batch:.0f} | {out['history'][-1]:.3f}"
        print(f"| {device} | {name} | {'fp32' if amp == 'off' else amp} | {figures} |")
ratios = []
for amp in ("off", "bf16"):
    if ("cuda", amp) in rates and ("cpu", amp) in rates:
        label = "fp32" if amp == "off" else amp
        ratios.append(f"GPU/CPU {label} {rates['cuda', amp] / rates['cpu', amp]:.1f}x")
for device in devices:
    ratios.append(f"bf16/fp32 on {device} {rates[device, 'bf16'] / rates[device, 'off']:.2f}x")
print()
print(f"Speed-ups: {'; '.join(ratios)}. Every step draws a new subnet, whose template is built")
print("on the CPU the first time, so a small space is bound by that and by kernel launches.")
EOF
}

# `mixnas train` (full training, evaluators.fulltrain) and `mixnas supernet differentiable` on each
# device: one spec of hybrid_cpu, 3 epochs of digits at batch 128, then 60 differentiable steps
# (MACs penalty); seconds per epoch and per step, test top-1, the chosen spec
train_section() {
    echo
    echo "### mixnas train and mixnas supernet differentiable (hybrid_cpu, digits)"
    echo
    "$py" -c 'from search_space import load_space; print(load_space("hybrid_cpu").sample(0).to_json())' \
        >"$work/spec.json"
    echo '{"epochs": 3, "batch_size": 128, "lr": 0.002, "warmup_epochs": 0, "data": {"name": "digits"}}' \
        >"$work/recipe.json"
    printf '%s\n' 'space: hybrid_cpu' 'data: digits' \
        'supernet: {steps: 60, batch_size: 128, checkpoint_every: 1000, device: DEVICE}' \
        'differentiable: {steps: 60, penalty: {metric: macs, weight: 0.1}, measure: false}' \
        >"$work/diff.yaml"
    echo "| device | train: s/epoch | train: test top-1 (%) | differentiable: s/step | chosen spec |"
    echo "| --- | --- | --- | --- | --- |"
    local device start mid end
    for device in $devices; do
        start=$(date +%s.%N)
        "$py" -m mixnas train "$work/spec.json" --recipe "$work/recipe.json" --device "$device" \
            --out "$work/train-$device" --quiet >&2
        mid=$(date +%s.%N)
        sed "s/DEVICE/$device/" "$work/diff.yaml" >"$work/diff-$device.yaml"
        "$py" -m mixnas supernet differentiable "$work/diff-$device.yaml" --runs-dir "$work/runs" \
            --quiet >&2
        end=$(date +%s.%N)
        "$py" - "$work" "$device" "$start" "$mid" "$end" <<'EOF'
import json, sys
work, device = sys.argv[1], sys.argv[2]
start, mid, end = map(float, sys.argv[3:])
record = json.load(open(f"{work}/train-{device}/train_record.json"))
arch = json.load(open(f"{work}/runs/diff-{device}/arch.json"))
print(f"| {device} | {(mid - start) / 3:.1f} | {record.get('test_top1', float('nan')):.1f} | "
      f"{(end - mid) / 60:.3f} | {arch['spec_id'][:12]} |")
EOF
    done
    echo
    echo "Wall time per epoch and per step includes each command's start (imports, data, building)."
}

mkdir -p "$(dirname "$out_file")"
figures=()
if [[ " $sections " == *" search "* ]]; then
    for device in $devices; do
        result=$(search "$device")
        read -r name wall <<<"$result"
        figures+=("$name" "$wall")
    done
fi
{
    echo "## GPU check ($(date -u +%Y-%m-%d), bench/gpu_check.sh)"
    if [[ " $sections " == *" search "* ]]; then
        echo
        echo "$trials trials (at most ${cap} s) of hybrid_cpu, cost + 20 training steps on" \
            "digits (batch 64), local backend, one worker; ms/trial is the mean evaluation time" \
            "of a trial."
        echo
        table "${figures[@]}"
    fi
    if [[ " $sections " == *" supernet "* ]]; then
        supernet_section
    fi
    if [[ " $sections " == *" train "* ]]; then
        train_section
    fi
} >"$out_file"
cat "$out_file"
