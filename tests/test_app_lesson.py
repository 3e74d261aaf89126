"""docs/classroom.md's answers are what the code gives now.

Regenerate with ``python -m sim.app.lesson --write``.
"""

from __future__ import annotations

from sim.app import lesson


def test_classroom_doc_answers_are_current():
    text = lesson.DOC.read_text()
    blocks = {m.group(2) for m in lesson.BLOCK.finditer(text)}
    assert blocks == set(lesson.ANSWERS), blocks
    assert lesson.render(text) == text, (
        "docs/classroom.md is stale: run `.venv/bin/python -m sim.app.lesson --write`"
    )


def test_render_replaces_stale_numbers():
    stale = "<!-- lesson:exercise2 -->\n| none | 1 t |\n<!-- /lesson:exercise2 -->"
    fresh = lesson.render(stale)
    assert "| none | 1 t |" not in fresh and "30 days" in fresh
