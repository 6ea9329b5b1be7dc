"""safeload/_record.py: every record behaves as the dataclass made from the same declaration, and stays a
dataclass to ``dataclasses`` (``is_dataclass``, ``fields``, ``replace``, ``asdict``, ``FrozenInstanceError``),
whichever of them is asked first."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys
from typing import Any

import pytest

from safeload import _record
from safeload._opcodes import OpcodeSpec
from safeload._reach import Reach
from safeload._record import field, field_names, record, replace
from safeload._report import FileReport, Finding, GlobalRef, Report
from safeload._types import Entry, Limits

RECORDS = [Limits, Entry, OpcodeSpec, Reach, GlobalRef, Finding, FileReport, Report]


def _twin(cls: type) -> Any:
    """The dataclass made from the record's own declaration (its names, defaults and parameters)."""
    spec = cls.__dict__["__record__"]
    body: dict[str, Any] = {"__annotations__": {n: cls.__annotations__[n] for n in spec["names"]}}
    for name, fld in spec["fields"].items():
        kwargs: dict[str, Any] = {"compare": fld.compare}
        if fld.default_factory is not _record._MISSING:
            kwargs["default_factory"] = fld.default_factory
        elif fld.default is not _record._MISSING:
            kwargs["default"] = fld.default
        body[name] = dataclasses.field(**kwargs)
    return dataclasses.dataclass(eq=spec["eq"], frozen=spec["frozen"])(type(cls.__name__, (), body))


def _example(cls: type) -> dict[str, Any]:
    """Values for every field without a default."""
    values = {"Limits": {}, "Entry": {"qualname": "m.f"}, "OpcodeSpec": dict(name="NONE", code=78, arg="none",
              proto=0, action="plain"), "Reach": {"offset": 3, "opcode": "GLOBAL"},
              "GlobalRef": dict(qualname="m.f", verdict="allowed", reason="r", member=None, pickle=0, offset=2,
                                opcode="GLOBAL"),
              "Finding": dict(path="p", rule="malformed", severity="error", message="m"),
              "FileReport": {"path": "p"}, "Report": {}}
    return values[cls.__name__]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_record_is_built_compared_and_shown_as_its_dataclass_twin(cls: type) -> None:
    twin = _twin(cls)
    assert field_names(cls) == tuple(f.name for f in dataclasses.fields(twin))
    a, b, t = cls(**_example(cls)), cls(**_example(cls)), twin(**_example(cls))
    assert [getattr(a, n) for n in field_names(cls) or ()] == [getattr(t, f.name) for f in dataclasses.fields(t)]
    assert a == b and a is not b and (a != t)
    assert (cls.__hash__ is None) == (twin.__hash__ is None)
    if cls.__hash__ is not None:
        assert hash(a) == hash(b)
    if cls is not Entry:  # Entry has a __repr__ of its own
        assert repr(a) == repr(t).replace(twin.__qualname__, cls.__qualname__, 1)
    if cls.__dict__["__record__"]["frozen"]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, field_names(cls)[0], 1)  # type: ignore[index]
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(a, field_names(cls)[0])  # type: ignore[index]
    with pytest.raises(TypeError):
        cls(**_example(cls), no_such_field=1)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_record_survives_copy_and_pickle(cls: type) -> None:
    a = cls(**_example(cls))
    for other in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert other == a and type(other) is cls


def test_default_factories_give_each_instance_its_own_list() -> None:
    a, b = FileReport("a"), FileReport("b")
    a.findings.append(Finding("a", "malformed", "error", "m"))
    assert b.findings == [] and FileReport.__dict__.get("findings") is None  # no shared class-level default


def test_a_field_that_is_not_compared_is_left_out_of_eq_and_hash() -> None:
    a, b = Entry("m.f", lazy=lambda: 1), Entry("m.f", lazy=lambda: 2)
    assert a == b and hash(a) == hash(b)


def test_post_init_runs_and_validates() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=0)
    with pytest.raises(TypeError, match="max_memo"):
        Limits(max_memo=True)


def test_replace_is_dataclasses_replace() -> None:
    f = Finding("p", "malformed", "error", "m", offset=3)
    assert replace(f, fix="x") == dataclasses.replace(f, fix="x") and replace(f, fix="x").offset == 3
    with pytest.raises(TypeError):
        replace(f, nope=1)
    with pytest.raises(ValueError):
        replace(Limits(), max_depth=-3)


def test_a_record_declaration_is_checked_as_a_dataclass_would_be() -> None:
    with pytest.raises(TypeError, match="non-default argument"):
        @record
        class Bad:
            a: int = 1
            b: int
    with pytest.raises(ValueError):
        field(default=1, default_factory=list)


# The first question dataclasses asks decides how a record becomes a dataclass: each is asked first in a fresh
# interpreter, where no record has been made a dataclass yet.
_FIRST_QUESTIONS: dict[str, str] = {
    "is_dataclass(class)": "print(dataclasses.is_dataclass(Finding))",
    "is_dataclass(instance)": "print(dataclasses.is_dataclass(f))",
    "fields(instance)": "print([x.name for x in dataclasses.fields(f)][:2])",
    "fields(class)": "print([x.name for x in dataclasses.fields(Finding)][:2])",
    "replace(instance)": "print(dataclasses.replace(f, rule='x').rule)",
    "asdict(report)": "print(json.dumps(dataclasses.asdict(r))[:40])",
    "astuple(instance)": "print(dataclasses.astuple(f)[:2])",
}


@pytest.mark.parametrize("question", sorted(_FIRST_QUESTIONS))
def test_dataclasses_sees_a_dataclass_whatever_it_asks_first(question: str) -> None:
    code = ("import dataclasses, json, sys\n"
            "from safeload._report import Finding, FileReport, Report\n"
            "assert 'dataclasses' not in sys.modules, 'imported at start-up'\n"
            "f = Finding('p', 'malformed', 'error', 'm')\n"
            "r = Report([FileReport('p', findings=[f])])\n" + _FIRST_QUESTIONS[question])
    code = code.replace("import dataclasses, json, sys\n", "import json, sys\n", 1).replace(
        "'imported at start-up'\n", "'imported at start-up'\nimport dataclasses\n", 1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    expected = {"is_dataclass(class)": "True", "is_dataclass(instance)": "True",
                "fields(instance)": "['path', 'rule']", "fields(class)": "['path', 'rule']",
                "replace(instance)": "x", "astuple(instance)": "('p', 'malformed')",
                "asdict(report)": json.dumps({"files": [{"path": "p", "status": "clean"}]})[:40]}
    assert out.stdout.strip() == expected[question]


def test_asdict_of_a_report_equals_its_to_dict() -> None:
    f = Finding("p", "malformed", "error", "m")
    report = FileReport("p", findings=[f], notes=["n"])
    assert dataclasses.asdict(report) == report.to_dict()
    assert dataclasses.is_dataclass(Limits()) and not dataclasses.is_dataclass(object())


def test_a_plain_missing_attribute_is_still_an_attribute_error() -> None:
    f = Finding("p", "malformed", "error", "m")
    with pytest.raises(AttributeError, match="no_such"):
        f.no_such  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(Finding, "no_such")


def test_a_subclass_of_a_record_is_one_as_a_subclass_of_a_dataclass_is() -> None:
    """A class derived from Limits keeps its fields, its validation, replace and its dataclass-ness (in a fresh
    interpreter too, where the subclass is asked first)."""

    class Tighter(Limits):
        pass

    with pytest.raises(ValueError, match="max_depth"):
        Tighter(max_depth=0)
    t = Tighter(max_depth=7)
    assert field_names(t) == field_names(Limits) and repr(t).startswith(f"{Tighter.__qualname__}(max_depth=7,")
    assert type(replace(t, max_memo=9)) is Tighter and replace(t, max_memo=9).max_depth == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.max_depth = 8  # type: ignore[misc]
    code = ("from safeload._types import Limits\nclass T(Limits): pass\nimport dataclasses\n"
            "print(dataclasses.is_dataclass(T), dataclasses.replace(T(), max_depth=3).max_depth, "
            "[f.name for f in dataclasses.fields(T)][:2])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.split() == ["True", "3", "['max_depth',", "'max_memo']"], out.stderr
    with pytest.raises(TypeError):
        replace(object(), a=1)
