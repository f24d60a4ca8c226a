"""Writes docs/evaluators.md: the proxy names, the ``train`` evaluator's options and the data
formats it reads, from the registries and declarations themselves.

Run ``.venv/bin/python docs/make_evaluators_doc.py``; a test (tests/test_cli_queries.py) fails
when the file is out of date.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("evaluators.md")


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line (a full stop inside
    brackets or quotes, as in "Lee et al. 2019", does not end it)."""
    paragraph = " ".join((inspect.cleandoc(doc or "").split("\n\n") or [""])[0].split())
    depth, quoted = 0, False
    for i, ch in enumerate(paragraph):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == '"':
            quoted = not quoted
        elif (
            ch == "."
            and depth == 0
            and not quoted
            and paragraph[i + 1 : i + 2] in (" ", "")
            and not re.search(r"(\bal|\be\.g|\bi\.e|\bvs)$", paragraph[:i])
        ):
            return paragraph[: i + 1]
    return paragraph


def keyword_docs(doc: str | None) -> dict[str, str]:
    """The ``Keyword arguments:`` block of a Google-style docstring: name -> text (an entry
    naming several options, ``lr, weight_decay: ...``, gives each the same text)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: dict[str, str] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Keyword arguments"))
    except StopIteration:
        return out
    names: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        entry = re.match(r"^ {4}([\w, ]+): (.*)$", line)
        if entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            for name in names:
                out[name] = entry.group(2).strip()
        else:
            for name in names:
                out[name] += " " + line.strip()
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _proxies() -> list[str]:
    from evaluators.proxies import PROXIES
    from evaluators.proxies.registry import ALL_TASKS, PROXY_TASKS
    from evaluators.proxy_evaluator import DEFAULT_PROXIES

    lines = [
        "## Proxies",
        "",
        "Training-free scores, registered in `evaluators.proxies.PROXIES`. The `proxy` "
        "evaluator reports each as the metric `proxy:<name>` (`options: {names: [...], "
        "batch_size: 64}`); higher is better for every one. Default: the ones marked, "
        f"`{', '.join(DEFAULT_PROXIES)}`. Tasks: the spec heads a proxy can score "
        "(`classification`: a pooled classifier; `causal_lm`: an LM head, whose gradient "
        "proxies use the next-token loss); a proxy asked for another task fails the result "
        "with one line naming the proxies that can.",
        "",
        "| name | default | tasks | what |",
        "|---|---|---|---|",
    ]
    for name in PROXIES.names():
        if PROXIES.origin(name):
            continue  # an installed plug-in's: the page documents mixnas itself
        mark = "yes" if name in DEFAULT_PROXIES else ""
        tasks = ", ".join(PROXY_TASKS.get(name, ALL_TASKS))
        what = _cell(first_sentence(PROXIES.get(name).__doc__))
        lines.append(f"| `{name}` | {mark} | {tasks} | {what} |")
    return lines


def _builtin_tasks() -> list[str]:
    """The generated tasks mixnas ships (an installed plug-in's tasks are not documented here)."""
    from evaluators import data
    from evaluators.tasks.base import TASKS

    return [n for n in data.generated() if TASKS[n].generate.__module__.startswith("evaluators.")]


def _train() -> list[str]:
    from evaluators.training import DEFAULT_STEPS, SETTING_TYPES, ShortTraining

    described = keyword_docs(ShortTraining.__doc__)
    lines = [
        "## The `train` evaluator",
        "",
        "Short training of each candidate's model (AdamW, linear warm-up then cosine decay), "
        "reporting `" + "`, `".join(ShortTraining.metrics) + "`. In a config:",
        "",
        "```yaml",
        "evaluators:",
        "  - name: train",
        "    budget: {steps: 300}         # steps, epochs and/or seconds; whichever ends first",
        "    data: digits                 # see 'Data formats' below",
        "    device: auto                 # auto | cpu | cuda | cuda:N",
        "    options: {lr: 0.002, batch_size: 64}",
        "```",
        "",
        f"`budget`: `steps`, `epochs` (passes over the training split) and `seconds`, each > 0; "
        f"the smallest step limit wins, and with neither steps nor epochs the run trains "
        f"{DEFAULT_STEPS} steps (or until `seconds`). `options`, each checked with its type and "
        "range before the run starts:",
        "",
        "| option | default | allowed | what |",
        "|---|---|---|---|",
    ]
    for name, default in ShortTraining.defaults.items():
        allowed = SETTING_TYPES[name].describe() if name in SETTING_TYPES else "-"
        shown = "-" if default in (None, ()) else f"`{default!r}`"
        what = described.get(name, "(undocumented)")
        lines.append(f"| `{name}` | {shown} | {_cell(allowed)} | {_cell(what)} |")
    return lines


def _lm() -> list[str]:
    from evaluators.tasks import TASKS, names
    from evaluators.tasks.dense import DenseTask  # a mask or an image per example: no tokens
    from evaluators.tasks.language import _NPZ_OPTIONS, DEFAULT_SOURCE, IGNORE

    return [
        "### Causal language modelling (`task: causal_lm`)",
        "",
        "With `options: {task: causal_lm}` the `train` evaluator trains next-token prediction: "
        "the spec needs a causal LM head (`lm_head`, logits `B x L x vocab`; the built-in space "
        "`causal_lm`, docs/spaces.md), the loss is the cross-entropy over every position that "
        "has a next token, `top1` is the next-token accuracy (percent of those positions), "
        "`loss` the mean loss per token and `perplexity` its exponential. A spec whose head "
        "does not match the task fails with one line. The data (`evaluators.tasks.language`) "
        f"are token sequences: `{DEFAULT_SOURCE}` by default, or any generated token task ("
        + ", ".join(f"`{n}`" for n in names() if not isinstance(TASKS[n], DenseTask))
        + "; the task's own options apply, its sequences are right-padded with id 0, never a "
        f"target), or `path/to/file.npz` holding `x`, an `N x L'` integer array of token ids: "
        "a row gives inputs `row[:L]` and targets `row[1:L+1]`, positions past the row's end "
        f"are no target (internally `{IGNORE}`); options "
        + ", ".join(f"`{o}`" for o in _NPZ_OPTIONS)
        + " (an id that marks padding inside rows; the validation share, 0.2). Example: "
        "docs/causal_lm_search.yaml (perplexity against parameters).",
    ]


def _knob(knob: Any) -> str:
    kind = knob.kind.__name__
    low = "" if knob.minimum is None else f"{knob.minimum:g}"
    high = "" if knob.maximum is None else f"{knob.maximum:g}"
    return f"{kind} [{low}, {high}]"


def _data() -> list[str]:
    from evaluators import data
    from evaluators.tasks import COMMON_DEFAULTS
    from evaluators.tasks.base import DIFFICULTIES, TASKS

    common = ", ".join(f"`{k}` ({v!r})" for k, v in COMMON_DEFAULTS.items())
    lines = [
        "## Data formats",
        "",
        "What an evaluator's `data:` (the `train`, `ptq` and `supernet` evaluators) may name; "
        "`evaluators.data.load_dataset` reads it offline, "
        "shaped for the spec's input, split into train and validation by `data_seed`. It is a "
        "name or path, or a mapping `{name: ..., <option>: ...}` (`data: {name: pathfinder, "
        "n_train: 4000}`); `options: {data_options: {...}}` wins over the mapping's options.",
        "",
        "| `data` | what | options |",
        "|---|---|---|",
        "| `synthetic` (also when `data` is absent) | a seeded, learnable classification task "
        "generated in memory in any input shape | "
        + ", ".join(f"`{o}`" for o in data._SYNTHETIC_OPTIONS)
        + " |",
        "| `digits` | scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), resized to "
        "the spec's resolution and repeated to its channels; images only | "
        + ", ".join(f"`{o}`" for o in data._FILE_OPTIONS)
        + " |",
        "| `path/to/file.npz` | arrays `x` and `y` (no pickles): images `N x H x W`, `N x C x H "
        "x W` or `N x H x W x C` (resized; 1 channel is repeated, any becomes gray), token ids "
        "`N x L` (integers below the vocabulary size), features `N x L x F`; sequences are cut "
        "or zero-padded to the spec's length; `y` 1-D integer class indices below "
        "`num_classes` | " + ", ".join(f"`{o}`" for o in data._FILE_OPTIONS) + " |",
        "| `path/to/folder/` | one sub-folder per class (sorted by name: class 0, 1, ...), "
        "images read with PIL: "
        + ", ".join(f"`{s}`" for s in data.IMAGE_SUFFIXES)
        + " (a `.npy` file holds one `H x W` or `C x H x W` array) | "
        + ", ".join(f"`{o}`" for o in data._FILE_OPTIONS)
        + " |",
    ]
    for name in _builtin_tasks():
        task = TASKS[name]
        knobs = ", ".join(f"`{k}`" for k in task.knobs)
        lines.append(f"| `{name}` | generated: {_cell(task.doc)} | the common ones, {knobs} |")
    lines += [
        "",
        "`val_fraction` (0.2) is the validation share of every source but the generated tasks; "
        "`normalize` (true) standardises image channels; `synthetic` takes `size` (1200) and "
        "`difficulty` (1.0, its noise). The generated tasks (docs/tasks.md) are seeded, "
        f"class-balanced, cached on disk, and take {common}; `difficulty` is one of "
        f"{', '.join(f'`{d}`' for d in DIFFICULTIES)}, a preset of their knobs:",
        "",
        "| task | knob | allowed | what |",
        "|---|---|---|---|",
    ]
    for name in _builtin_tasks():
        for knob_name, knob in TASKS[name].knobs.items():
            lines.append(f"| `{name}` | `{knob_name}` | {_knob(knob)} | {_cell(knob.doc)} |")
    return lines


def render() -> str:
    lines = [
        "# Evaluators: proxies, training options, data formats",
        "",
        "Generated by `docs/make_evaluators_doc.py` from the registries and the evaluators' "
        "declarations; do not edit by hand. How a run uses evaluators (screening, devices, "
        "your own evaluator) is in [runs.md](runs.md); the generated tasks in "
        "[tasks.md](tasks.md).",
        "",
        *_proxies(),
        "",
        *_train(),
        "",
        *_lm(),
        "",
        *_data(),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
