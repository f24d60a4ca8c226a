"""The report's line on the recipe a run belongs to (`mixnas recipe`), with the recipe's figures.

A recipe's search stage leaves ``recipe.json`` in its run folder: the recipe's name, title, paper,
seed documents, the stage, and the SVG figures later stages drew (the wide-vs-deep sweep's
curves, ...). A run without that file gets no section.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

RECIPE_FILE = "recipe.json"


def read_recipe_note(run_dir: Path) -> dict[str, Any] | None:
    """The run's recipe note, or None (no file, or not a JSON object)."""
    path = run_dir / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def recipe_header(run_dir: Path) -> str:
    """A paragraph naming the recipe and its paper, then its figures; empty without a note."""
    note = read_recipe_note(run_dir)
    if note is None:
        return ""
    seeds = ", ".join(str(s) for s in note.get("seeds", []))
    parts = [
        "<p class='recipe'>Recipe <b>"
        + escape(str(note.get("title", note.get("name", "?"))))
        + "</b> (<code>mixnas recipe "
        + escape(str(note.get("name", "?")))
        + "</code>, stage <code>"
        + escape(str(note.get("stage", "?")))
        + "</code>): "
        + escape(str(note.get("paper", "")))
        + (f"; seed documents {escape(seeds)}" if seeds else "")
        + ".</p>"
    ]
    figures = [Path(f) for f in note.get("figures", []) if isinstance(f, str)]
    drawn = [f for f in figures if f.suffix == ".svg" and f.is_file()]
    if drawn:
        parts.append("<div class='charts'>")
        for figure in drawn:
            # our own SVG, written by the recipe's stage: inlined like the report's charts
            parts.append(f"<figure>{figure.read_text()}<figcaption>{escape(figure.name)}")
            parts.append("</figcaption></figure>")
        parts.append("</div>")
    return "\n".join(parts)
