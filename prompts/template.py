"""A prompt template: its fields, validation, content hash, rendering, YAML form, diff (see prompts/__init__.py)."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engines.errors import PromptError
CLIP_VARIABLES = ("duration_s", "num_frames", "timestamps", "fps", "width", "height", "video_id")
ALLOWED_VARIABLES = frozenset(CLIP_VARIABLES + ("answer_schema",))
KINDS = ("detect", "chat")
LANGUAGES = ("zh", "en")
FIELDS = ("id", "version", "parent", "kind", "language", "title", "system", "user", "answer_schema", "few_shot", "notes")
REQUIRED = ("id", "version", "kind", "language", "title", "system", "user")
TEXT_FIELDS = ("title", "system", "user", "answer_schema", "few_shot", "notes")
CONTENT_FIELDS = ("system", "user", "answer_schema", "few_shot")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_REF_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)@(\d+)")


def _norm_text(s: str | None) -> str | None:
    if s is None:
        return None
    lines = [ln.rstrip() for ln in str(s).replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out = "\n".join(lines).strip("\n")
    return out


def _sha(obj: Any) -> str:
    data = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _placeholders(text: str, where: str, label: str) -> set[str]:
    """Names used as {name} in ``text``; PromptError for unknown names or malformed braces."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise PromptError(
            f"{label} has an unmatched brace in {where}; write literal braces as {{{{ and }}}}."
        ) from None
    for _lit, name, spec, conv in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise PromptError(f"{label} has an empty or positional {{}} placeholder in {where}; name it, e.g. {{duration_s}}.")
        if not name.isidentifier():
            shown = "{" + name + (":" + spec if spec else "") + "}"
            raise PromptError(f"{label} has {shown} in {where}, which is not a variable; write literal braces as "
                              "{{ and }}, or put the answer JSON in answer_schema.")
        if spec or conv:
            raise PromptError(f"{label} uses {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} in {where}; "
                              "only plain names such as {duration_s} are allowed.")
        if name not in ALLOWED_VARIABLES:
            raise PromptError(
                f"{label} uses unknown variable {{{name}}}; allowed: {', '.join('{' + v + '}' for v in sorted(ALLOWED_VARIABLES))}."
            )
        names.add(name)
    return names


@dataclass
class PromptTemplate:
    id: str
    version: int
    kind: str
    language: str
    title: str
    system: str
    user: str
    parent: str | None = None
    answer_schema: str | None = None
    few_shot: str | None = None
    notes: str | None = None
    source: Path | None = None
    hash: str = field(default="", init=False)
    content_hash: str = field(default="", init=False)

    def __post_init__(self) -> None:
        for f in TEXT_FIELDS:
            setattr(self, f, _norm_text(getattr(self, f)) or (None if f in ("answer_schema", "few_shot", "notes") else ""))
        self.validate()
        self.hash = _sha(self.canonical())
        self.content_hash = _sha({f: getattr(self, f) for f in CONTENT_FIELDS})

    # -- identity ---------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    @property
    def label(self) -> str:
        return str(self.source) if self.source else f"prompt {self.ref}"

    def canonical(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in FIELDS}

    # -- checks -----------------------------------------------------------------------------
    def validate(self) -> None:
        label = self.label
        if not isinstance(self.id, str) or not _ID_RE.fullmatch(self.id):
            raise PromptError(f"{label} has an invalid id {self.id!r}; use letters, digits, _ - or . (no @).")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise PromptError(f"{label} has version {self.version!r}; it must be a whole number of 1 or more.")
        if self.parent is not None and (not isinstance(self.parent, str) or not _REF_RE.fullmatch(self.parent)):
            raise PromptError(f"{label} has parent {self.parent!r}; it must look like id@version (e.g. ghost_probing@1) or be null.")
        if self.kind not in KINDS:
            raise PromptError(f"{label} has kind {self.kind!r}; allowed: {', '.join(KINDS)}.")
        if self.language not in LANGUAGES:
            raise PromptError(f"{label} has language {self.language!r}; allowed: {', '.join(LANGUAGES)}.")
        if not self.title:
            raise PromptError(f"{label} has an empty title.")
        if not self.system:
            raise PromptError(f"{label} has an empty system message.")
        if not self.user:
            raise PromptError(f"{label} has an empty user message.")
        used = self.variables()
        if "answer_schema" in used and not self.answer_schema:
            raise PromptError(f"{label} uses {{answer_schema}} but has no answer_schema field.")
        if self.kind == "detect":
            if not self.answer_schema:
                raise PromptError(f"{label} is a detect prompt without an answer_schema.")
            if "answer_schema" not in used:
                raise PromptError(f"{label} is a detect prompt that never inserts {{answer_schema}} into system or user.")

    def variables(self) -> set[str]:
        """Variable names used in system and user (few_shot and answer_schema are inserted verbatim)."""
        return _placeholders(self.system, "system", self.label) | _placeholders(self.user, "user", self.label)

    # -- use ----------------------------------------------------------------------------------
    def render(self, variables: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Messages ``[system, user]``; few_shot is appended to the system message.

        Missing variables raise PromptError naming them; extra ones are ignored."""
        values = dict(variables or {})
        if self.answer_schema is not None:
            values.setdefault("answer_schema", self.answer_schema)
        missing = sorted(self.variables() - set(values))
        if missing:
            raise PromptError(
                f"prompt {self.ref} needs {', '.join('{' + m + '}' for m in missing)}, which the caller did not give."
            )
        system = self.system.format_map(values)
        if self.few_shot:
            system = f"{system}\n\n{self.few_shot}"
        return [{"role": "system", "content": system}, {"role": "user", "content": self.user.format_map(values)}]

    def to_dict(self) -> dict[str, Any]:
        d = self.canonical()
        d.update(hash=self.hash, short_hash=self.short_hash, content_hash=self.content_hash,
                 source=str(self.source) if self.source else None, variables=sorted(self.variables()))
        return d

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "ref": self.ref, "hash": self.hash,
                "short_hash": self.short_hash, "language": self.language, "kind": self.kind,
                "title": self.title, "parent": self.parent, "source": str(self.source) if self.source else None}

    def to_yaml(self) -> str:
        header = f"# {self.ref} sha256:{self.hash}\n"
        return header + yaml.dump(self.canonical(), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10_000)

    @classmethod
    def from_dict(cls, data: Any, source: Path | str | None = None) -> PromptTemplate:
        label = str(source) if source else "prompt"
        if not isinstance(data, dict):
            raise PromptError(f"{label} is not a YAML mapping of fields (id, version, kind, …).")
        unknown = [k for k in data if k not in FIELDS]
        if unknown:
            raise PromptError(f"{label} has unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}.")
        missing = [k for k in REQUIRED if data.get(k) in (None, "")]
        if missing:
            raise PromptError(f"{label} is missing required field {missing[0]!r}.")
        for f in TEXT_FIELDS:
            if data.get(f) is not None and not isinstance(data[f], str):
                raise PromptError(f"{label} has a {f} that is not text.")
        version = data["version"]
        if isinstance(version, str) and version.strip().isdigit():
            version = int(version.strip())
        kwargs = {k: data.get(k) for k in FIELDS}
        kwargs["version"] = version
        kwargs["id"] = str(data["id"])
        return cls(**kwargs, source=Path(source) if source else None)


# libyaml's safe loader when PyYAML was built with it: the same documents, ~10× faster (the app loads every
# template at start-up); the pure-Python one otherwise.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_presenter)


def _display(path: Path) -> str:
    """Relative to the working folder when inside it (``prompts/templates/x.yaml``), else absolute."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def load_template(path: str | Path) -> PromptTemplate:
    """Read and validate one template file; PromptError names the file and the problem."""
    p = Path(path)
    shown = _display(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"{shown} does not exist.") from None
    except UnicodeDecodeError:
        raise PromptError(f"{shown} is not UTF-8 text.") from None
    except OSError as e:
        raise PromptError(f"{shown} cannot be read ({e.strerror or e}).") from None
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader (libyaml's when present)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PromptError(f"{shown} is not valid YAML{where}.") from None
    tpl = PromptTemplate.from_dict(data, source=shown)
    tpl.source = p
    return tpl


def diff(a: PromptTemplate, b: PromptTemplate) -> str:
    """Unified diff of the two versions' YAML (empty when identical)."""
    return "".join(difflib.unified_diff(
        a.to_yaml().splitlines(keepends=True), b.to_yaml().splitlines(keepends=True),
        fromfile=f"{a.ref} ({a.short_hash})", tofile=f"{b.ref} ({b.short_hash})",
    ))
