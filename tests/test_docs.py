"""Numbers in the docs come from code: every generated block equals a fresh run (make docs)."""

from __future__ import annotations

import pytest

from sim import docgen


def _blocks():
    out = []
    for path in docgen.doc_files():
        _, seen = docgen.render(path.read_text(), only=set())
        out += [(path, name) for name in seen]
    return out


BLOCKS = _blocks()


def test_every_block_has_a_generator_and_every_generator_a_block():
    names = [name for _, name in BLOCKS]
    assert sorted(set(names)) == sorted(docgen.GENERATORS)


@pytest.mark.parametrize("path, name", BLOCKS, ids=[f"{p.name}:{n}" for p, n in BLOCKS])
def test_committed_block_equals_a_fresh_run(path, name):
    text = path.read_text()
    fresh, _ = docgen.render(text, only={name})
    assert fresh == text, f"{path.name}: block {name!r} is stale; run `make docs`"


def test_render_replaces_only_the_block_body():
    text = "a\n<!-- generated: x (make docs) -->\nold\n<!-- end generated: x -->\nb\n"
    docgen.GENERATORS["x"] = lambda: "new"
    try:
        out, seen = docgen.render(text)
    finally:
        del docgen.GENERATORS["x"]
    assert seen == ["x"]
    assert out == "a\n<!-- generated: x (make docs) -->\nnew\n<!-- end generated: x -->\nb\n"


def test_prim_examples_in_the_docs_name_real_outcomes():
    import re

    from sim.experiments.analyze import parse_prim
    from sim.experiments.spec import load_spec

    text = (docgen.ROOT / "docs" / "experiments.md").read_text()
    examples = re.findall(r'--prim "([^"]+)"', text)
    assert examples
    spec, _ = load_spec(docgen.ROOT / "experiments" / "sweep_classroom_sobol.toml")
    names = {o.name for o in spec.outcomes}
    for ex in examples:
        outcome, _, _ = parse_prim(ex)
        assert outcome in names, ex
