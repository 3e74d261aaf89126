"""The parameter reference (docs/parameters.md): every key of a world and of a sweep spec.

Everything in the reference is read from the schema (the pydantic models of ``sim/world.py``
and ``sim/experiments/spec.py``), so a field added there appears in the reference at the next
``make docs`` with no other edit:

- **key paths** come from walking the models (inherited fields, e.g. those every firm table
  shares, are listed once, under the base model that declares them);
- **defaults** from the fields' defaults ("required" where there is none);
- **units** from the key name's suffix (:data:`SUFFIX_UNITS`: ``_t_per_yr`` is t/yr,
  ``_usd_per_kg`` USD/kg, ``_months`` months, ...), unless the field declares one with
  ``Field(json_schema_extra={"unit": ...})``; a number with neither is dimensionless ("1");
- **ranges** from the pydantic constraints (``ge``/``gt``/``le``/``lt``, ``Literal`` choices,
  string patterns), also inside ``dict`` values, list items and optional values;
- **meanings** from the fields' ``description``.

Where each world value comes from (a citation id of ``docs/sources.md``, "calibrated (see
report)", "no source: default", per-entry data, or structure) is *not* in the schema but in
one data file, ``sim/parameter_sources.toml`` (:data:`SOURCES_FILE`). Why a data file rather
than ``Field(json_schema_extra={"source": ...})`` on every field:

1. sources are reviewed and changed on a different cadence and by different people (whoever
   reads the literature) than the model code; a table of ids and notes is easier to review
   and to check against ``docs/sources.md`` in one place;
2. ``sim/world.py`` stays a schema that says what a world *is*; a hundred citation notes in it
   would double its length and bury the constraints;
3. the file also gives a meaning to fields the schema leaves undescribed, without editing the
   models (a field may have its description in one place only: schema or file, never both).

Sweep-spec keys carry no source: they are the analyst's choices, not claims about the world.

``tests/test_parameters_doc.py`` fails when a world key has no entry in the sources file (so
a new field cannot slip in unsourced), when an entry names a key the schema no longer has,
when a cited id is not in ``docs/sources.md``, and when the committed page is stale.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

SOURCES_FILE = Path(__file__).with_name("parameter_sources.toml")
SOURCES_MD = Path(__file__).resolve().parents[1] / "docs" / "sources.md"

SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_usd_per_t_per_yr", "USD per t/yr"),
    ("_usd_per_kg", "USD/kg"),
    ("_t_per_yr", "t/yr"),
    ("_t_per_t", "t/t"),
    ("_probability_per_month", "1/month"),
    ("_per_month", "1/month"),
    ("_per_yr", "1/yr"),
    ("_months", "months"),
    ("_years", "years"),
    ("_days", "days"),
    ("_seconds", "s"),
    ("_usd", "USD"),
    ("_t", "t"),
    ("_share", "share"),
    ("_sd_log", "sd of ln"),
)
"""Key-name suffix -> unit, longest first (the house rule: units in names)."""

Kind = Literal["sourced", "calibrated", "default", "data", "structure"]
KIND_TEXT: dict[str, str] = {
    "sourced": "",
    "calibrated": "calibrated (see report)",
    "default": "**no source: default**",
    "data": "data: cited in the world file",
    "structure": "structure",
}


class SourceEntry(BaseModel):
    """Where one world key's value comes from (one entry of ``parameter_sources.toml``).

    Attributes:
        kind: ``sourced`` (cited ids), ``calibrated`` (fitted by ``ndsim calibrate``; the
            default is a hand fit), ``default`` (no source: an assumption, flagged),
            ``data`` (a per-entry value cited in the entry's own ``source`` key) or
            ``structure`` (ids, names, switches: not a quantity).
        sources: Ids of ``docs/sources.md`` (required for ``sourced``; for ``calibrated``,
            the sources of the prior or of the hand-fit default).
        note: How the value follows from the sources, or why the default was chosen.
        meaning: What the key means, for a field whose schema has no ``description``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    sources: list[str] = []
    note: str = ""
    meaning: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> SourceEntry:
        if self.kind == "sourced" and not self.sources:
            raise ValueError("kind 'sourced' needs 'sources' (ids of docs/sources.md)")
        if self.kind in ("structure", "data") and self.sources:
            raise ValueError(f"kind {self.kind!r} takes no 'sources' (use kind 'sourced')")
        return self


@dataclass
class Key:
    """One key of a schema: where it appears and the field that declares it."""

    table: str  # id prefix in the sources file: "behaviour", "firm", "governments.tariffs"
    name: str
    field: FieldInfo
    nested: str | None = None  # heading of the section documenting a model-valued key

    @property
    def id(self) -> str:
        """``table.name``, the key's id in the sources file."""
        return f"{self.table}.{self.name}"


@dataclass
class Section:
    """The keys one model declares, and the file tables where they are written."""

    table: str
    model: type[BaseModel]
    headings: list[str] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)

    @property
    def title(self) -> str:
        """``[behaviour]``, or ``[[mines]], [[separators]], ...`` for a shared base."""
        return ", ".join(f"`{h}`" if h.startswith("[") else h for h in self.headings)


# ------------------------------------------------------------------------------ walking
def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model inside ``annotation`` and how it is written: "", "[]" (list) or "<>" (dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list:
        model, _ = _models_in(args[0]) if args else (None, "")
        return model, "[]"
    if origin is dict:
        model, _ = _models_in(args[1]) if len(args) > 1 else (None, "")
        return model, "<>"
    if origin in (typing.Union, types.UnionType):
        for a in args:
            model, how = _models_in(a)
            if model is not None:
                return model, how
    return None, ""


def _declaring(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The class of ``model``'s MRO whose own annotations declare field ``name``."""
    for cls in model.__mro__:
        if name in cls.__dict__.get("__annotations__", {}):
            return cls
    return model


def _base_table(cls: type[BaseModel]) -> str:
    """``FirmSpec`` -> ``firm``: the sources-file table of a base shared by several tables."""
    stem = cls.__name__.removesuffix("Spec").lstrip("_")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", stem).lower()


def walk(root: type[BaseModel], top: str = "world") -> list[Section]:
    """Every section of ``root``'s schema, depth first, in field order.

    Args:
        root: The model of a whole file (``World``, ``SweepSpec``).
        top: The sources-file table of ``root``'s own keys (also its section's title).
    """
    sections: dict[str, Section] = {}

    def heading(path: str, how: str) -> str:
        if how == "[]":
            return f"[[{path}]]"
        if how == "<>":
            return f"[{path}.<name>]"
        return f"[{path}]"

    def visit(model: type[BaseModel], table: str, head: str) -> None:
        for name, info in model.model_fields.items():
            decl = _declaring(model, name)
            key_table = table if decl is model else _base_table(decl)
            sec = sections.get(key_table)
            if sec is None:
                sec = sections[key_table] = Section(key_table, decl)
            if head not in sec.headings:
                sec.headings.append(head)
            if any(k.name == name for k in sec.keys):
                continue
            sub, how = _models_in(info.annotation)
            key = Key(key_table, name, info)
            sec.keys.append(key)
            if sub is not None:
                path = name if table == top else f"{table}.{name}"
                key.nested = heading(path, how)
                visit(sub, path, key.nested)

    visit(root, top, f"{top} file, top level")
    return list(sections.values())


def keys(root: type[BaseModel], top: str = "world") -> list[Key]:
    """Every key of ``root``'s schema (model-valued keys included)."""
    return [k for s in walk(root, top) for k in s.keys]


def leaf_keys(root: type[BaseModel], top: str = "world") -> list[Key]:
    """The keys holding values (not tables): those that need a source entry."""
    return [k for k in keys(root, top) if k.nested is None]


# ---------------------------------------------------------------------------- describing
def unit(name: str, info: FieldInfo) -> str:
    """The unit of key ``name``: field metadata, else the name's suffix, else by type."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and "unit" in extra:
        return str(extra["unit"])
    for suffix, u in SUFFIX_UNITS:
        if name.endswith(suffix):
            return u
    return "1" if _is_number(info.annotation) else "–"


def _is_number(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_number(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin is dict:
            args = args[1:]
        return bool(args) and all(_is_number(a) or a is Ellipsis for a in args)
    return False


def _bound_text(metadata: list[Any]) -> str:
    lo = hi = ""
    for m in metadata:
        if isinstance(m, at.Ge):
            lo = f"[{_num(m.ge)}"
        elif isinstance(m, at.Gt):
            lo = f"({_num(m.gt)}"
        elif isinstance(m, at.Le):
            hi = f"{_num(m.le)}]"
        elif isinstance(m, at.Lt):
            hi = f"{_num(m.lt)})"
        elif isinstance(m, at.Interval):
            return _bound_text(list(m))
        elif getattr(m, "pattern", None):
            return _pattern_text(m.pattern)
    if lo and hi:
        return f"{lo}, {hi}"
    if lo:
        return ("≥ " if lo[0] == "[" else "> ") + lo[1:]
    if hi:
        return ("≤ " if hi[-1] == "]" else "< ") + hi[:-1]
    return ""


def _pattern_text(pattern: str) -> str:
    from sim.world import _PATTERN_HELP

    return _PATTERN_HELP.get(pattern, f"matches `{pattern}`").removeprefix("expected ")


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _constraints(annotation: Any) -> str:
    """Constraints inside an annotation: Annotated metadata, Literal choices, containers."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        meta: list[Any] = []
        for m in args[1:]:
            meta += list(m.metadata) if isinstance(m, FieldInfo) else [m]
        return _bound_text(meta) or _constraints(args[0])
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_constraints(a) for a in args if a is not type(None)]
        return "; ".join(p for p in parts if p)
    if origin is dict and len(args) == 2:
        inner = _constraints(args[1])
        return f"each value {inner}" if inner else ""
    if origin is list and args:
        inner = _constraints(args[0])
        return f"each item {inner}" if inner else ""
    return ""


def allowed(info: FieldInfo) -> str:
    """The allowed range of a field, from its pydantic constraints ("" when unconstrained)."""
    return _bound_text(list(info.metadata)) or _constraints(info.annotation)


def default_text(info: FieldInfo) -> str:
    """The default value as it would be written in a TOML file ("required" if none)."""
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    return _value_text(value)


def _value_text(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "(table)"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float | int):
        return _num(value)
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, dict):
        if not value:
            return "`{}`"
        return "; ".join(f"{k} {_value_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "`[" + ", ".join(_plain(v) for v in value) + "]`"
    return f"`{value!r}`"


def _plain(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else _num(v) if isinstance(v, float) else str(v)


# ------------------------------------------------------------------------------- sources
@cache
def load_sources(path: Path = SOURCES_FILE) -> dict[str, SourceEntry]:
    """The entries of the sources file, keyed by ``table.key``.

    Raises:
        ValueError: If an entry is malformed (with its key path).
    """
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    out: dict[str, SourceEntry] = {}

    def visit(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            where = f"{prefix}.{k}" if prefix else k
            if not isinstance(v, dict):
                raise ValueError(f"{path.name}: {where}: expected a table")
            if "kind" in v:
                try:
                    out[where] = SourceEntry.model_validate(v)
                except ValidationError as exc:
                    msg = exc.errors(include_url=False)[0]["msg"].replace("Value error, ", "")
                    raise ValueError(f"{path.name}: {where}: {msg}") from None
            else:
                visit(v, where)

    visit(raw, "")
    return out


def source_ids(path: Path = SOURCES_MD) -> set[str]:
    """The citation ids that ``docs/sources.md`` defines (first column of its tables)."""
    ids = set()
    for line in path.read_text().splitlines():
        m = re.match(r"^\|\s*([A-Z][A-Za-z0-9\-]+)\s*\|", line)
        if m:
            ids.add(m.group(1))
    return ids


def source_text(entry: SourceEntry | None) -> str:
    """The source cell of a key: cited ids, calibration or the 'no source' flag, and the note."""
    if entry is None:
        return "**missing** (add to `sim/parameter_sources.toml`)"
    ids = ", ".join(f"`{s}`" for s in entry.sources)
    head = KIND_TEXT[entry.kind]
    if entry.kind == "calibrated" and ids:
        head += f"; default from {ids}"
    elif entry.kind == "default" and ids:
        head += f"; context {ids}"
    elif ids:
        head = ids
    return f"{head}: {entry.note}" if entry.note else head


# ------------------------------------------------------------------------------ markdown
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@cache
def type_descriptions() -> frozenset[str]:
    """Descriptions of the world's annotated types (``Month``, ``Region``): not a key's meaning."""
    import sim.world

    out = set()
    for value in vars(sim.world).values():
        if typing.get_origin(value) is typing.Annotated:
            out |= {m.description for m in typing.get_args(value)[1:] if _described(m)}
    return frozenset(out)


def _described(m: Any) -> bool:
    return isinstance(m, FieldInfo) and bool(m.description)


def own_description(info: FieldInfo) -> str:
    """The field's own ``description`` (not one inherited from its annotated type)."""
    text = info.description or ""
    return "" if text in type_descriptions() else text


def meaning(key: Key, entry: SourceEntry | None) -> str:
    """The key's meaning: the field's own description, else the sources file's ``meaning``."""
    text = own_description(key.field) or (entry.meaning if entry else "") or ""
    text = text or (key.field.description or "")
    if key.nested:
        text = f"{text} (see {key.nested})" if text else f"see {key.nested}"
    return text


def table(root: type[BaseModel], *, top: str, sourced: bool) -> str:
    """The Markdown reference of ``root``: one table per section."""
    entries = load_sources() if sourced else {}
    out: list[str] = []
    for sec in walk(root, top):
        doc = (sec.model.__doc__ or "").strip().split("\n")[0]
        out += [f"### {sec.title}", ""]
        if doc:
            out += [doc, ""]
        cols = ["key", "default", "unit", "range", "meaning"] + (["source"] if sourced else [])
        out += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for k in sec.keys:
            e = entries.get(k.id)
            row = [
                f"`{k.name}`",
                "(table)" if k.nested else default_text(k.field),
                unit(k.name, k.field),
                allowed(k.field),
                meaning(k, e),
            ]
            if sourced:
                row.append("" if k.nested else source_text(e))
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def world_reference() -> str:
    """The world-file reference with a count of keys by kind of source (docs/parameters.md)."""
    from sim.world import World

    entries = load_sources()
    leaves = leaf_keys(World)
    counts = {kind: 0 for kind in KIND_TEXT}
    for k in leaves:
        e = entries.get(k.id)
        if e is not None:
            counts[e.kind] += 1
    flagged = [f"`{k.id}`" for k in leaves if (e := entries.get(k.id)) and e.kind == "default"]
    summary = (
        f"{len(leaves)} value keys: {counts['sourced']} sourced, {counts['calibrated']} "
        f"calibrated, {counts['default']} with no source (flagged below), {counts['data']} "
        f"per-entry data, {counts['structure']} structure."
    )
    flags = "No source yet (assumptions to check): " + ", ".join(flagged) + "."
    return "\n".join([summary, "", flags, "", table(World, top="world", sourced=True)])


def sweep_reference() -> str:
    """The sweep-spec reference (docs/parameters.md)."""
    from sim.experiments.spec import SweepSpec

    return table(SweepSpec, top="sweep", sourced=False)


def documented_keys(text: str) -> dict[str, set[str]]:
    """``{section title: {key, ...}}`` as a committed docs/parameters.md lists them."""
    out: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = out.setdefault(line[4:].strip(), set())
        elif current is not None and (m := re.match(r"^\| `([^`]+)` \|", line)):
            current.add(m.group(1))
    return out


# -------------------------------------------------------------------------------- checks
def missing_sources(root: type[BaseModel], entries: dict[str, SourceEntry]) -> list[str]:
    """Ids (``table.key``) of value keys of ``root`` with no entry in the sources file."""
    return [k.id for k in leaf_keys(root) if k.id not in entries]


def orphan_sources(root: type[BaseModel], entries: dict[str, SourceEntry]) -> list[str]:
    """Entries of the sources file naming no value key of ``root`` (removed or misspelt)."""
    ids = {k.id for k in leaf_keys(root)}
    return sorted(set(entries) - ids)


def unknown_citations(entries: dict[str, SourceEntry], known: set[str]) -> dict[str, list[str]]:
    """``{entry id: [cited ids not in docs/sources.md]}`` for entries citing unknown ids."""
    out = {key: [s for s in e.sources if s not in known] for key, e in entries.items()}
    return {key: bad for key, bad in out.items() if bad}


def undescribed(root: type[BaseModel], entries: dict[str, SourceEntry]) -> list[str]:
    """Value keys with no meaning at all (no own description and no ``meaning`` entry)."""
    out = []
    for k in leaf_keys(root):
        e = entries.get(k.id)
        if not own_description(k.field) and not (e and e.meaning):
            out.append(k.id)
    return out


def described_twice(root: type[BaseModel], entries: dict[str, SourceEntry]) -> list[str]:
    """Keys with a description in the schema *and* a ``meaning`` in the sources file."""
    return [
        k.id
        for k in leaf_keys(root)
        if own_description(k.field) and (e := entries.get(k.id)) is not None and e.meaning
    ]
