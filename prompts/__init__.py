"""The prompt library: versioned YAML templates, Chinese first. Data, not code.

A template file (``prompts/templates/<id>.v<version>.yaml``) holds these fields::

    id: ghost_probing            # letters, digits, _ - .
    version: 2                   # integer >= 1; the latest version of an id is the highest number
    parent: ghost_probing@1      # id@version it was derived from, or null
    kind: detect                 # detect | chat
    language: zh                 # zh | en
    title: 定义 + 反例
    system: |                    # may use {variables}; literal braces must be doubled: {{ }}
      ...
    user: |                      # may use {variables}; detect prompts use {answer_schema}
      ...
    answer_schema: |             # the JSON the model must answer with; inserted verbatim
      {...}
    few_shot: |                  # optional; inserted verbatim (no variables)
      ...
    notes: |                     # optional; why this version exists, what it changes
      ...

Variables: {duration_s} {num_frames} {timestamps} {fps} {width} {height} {video_id} (build them
with :func:`clip_variables`), plus {answer_schema}, filled from the template's own field.

Rendering (:meth:`PromptTemplate.render`) gives ``[{"role": "system"}, {"role": "user"}]``. The
few-shot text, when present, is appended to the system message after a blank line (one system
message keeps every backend happy; the examples are plain text, not fake turns).

A version is immutable. Its ``hash`` is the SHA-256 of the canonical JSON of all its fields after
normalisation (line endings → ``\\n``, trailing spaces on each line and leading/trailing blank
lines dropped), so re-indenting or re-quoting the YAML changes nothing while any change of
content does. ``content_hash`` covers only what the model sees (system, user, answer_schema,
few_shot): two versions with the same content_hash ask the model the same thing, and
:meth:`PromptLibrary.save_new_version` refuses to create one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engines.errors import PromptError

__all__ = [
    "ALLOWED_VARIABLES",
    "BUNDLED_DIR",
    "CLIP_VARIABLES",
    "PromptLibrary",
    "PromptTemplate",
    "clip_variables",
    "diff",
    "load_template",
]

BUNDLED_DIR = Path(__file__).resolve().parent / "templates"
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
        data = yaml.safe_load(text)
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


def default_dirs() -> list[Path]:
    """Bundled templates, then the user folder: $GHOSTPROBE_PROMPTS, else $GHOSTPROBE_DATA_DIR/prompts
    (``./data/prompts`` by default) when it exists."""
    dirs = [BUNDLED_DIR]
    env = os.environ.get("GHOSTPROBE_PROMPTS")
    if env:
        dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    else:
        user = Path(os.environ.get("GHOSTPROBE_DATA_DIR") or "data").expanduser() / "prompts"
        if user.is_dir():
            dirs.append(user)
    return dirs


def user_dir() -> Path:
    """Where new versions are saved by default: the first user folder."""
    env = os.environ.get("GHOSTPROBE_PROMPTS")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return Path(os.environ.get("GHOSTPROBE_DATA_DIR") or "data").expanduser() / "prompts"


class PromptLibrary:
    """Every template found in a list of folders, addressable by id, id@version or hash prefix."""

    def __init__(self, templates: list[PromptTemplate] | None = None, dirs: list[Path] | None = None):
        self.dirs = list(dirs or [])
        self.problems: list[str] = []  # files skipped by a non-strict load, one sentence each
        self._by_ref: dict[str, PromptTemplate] = {}
        for t in templates or []:
            self._add(t)

    @classmethod
    def load(cls, dirs: list[Path] | None = None, *, strict: bool = True) -> PromptLibrary:
        """Load ``*.yaml``/``*.yml`` from ``dirs`` (default: :func:`default_dirs`).

        A missing folder in an explicit list is an error; with ``strict=False`` a bad file is
        skipped and its sentence kept in ``.problems`` instead of raising."""
        dirs = [Path(d) for d in (default_dirs() if dirs is None else dirs)]
        lib = cls(dirs=dirs)
        for d in dirs:
            if not d.is_dir():
                msg = f"prompt folder {_display(d)} does not exist."
                if strict:
                    raise PromptError(msg)
                lib.problems.append(msg)
                continue
            files = sorted([*d.glob("*.yaml"), *d.glob("*.yml")])
            for f in files:
                try:
                    lib._add(load_template(f))
                except PromptError as e:
                    if strict:
                        raise
                    lib.problems.append(str(e))
        return lib

    def _add(self, t: PromptTemplate) -> None:
        other = self._by_ref.get(t.ref)
        if other is not None:
            if other.hash == t.hash:
                return  # the same version in two folders
            where = _display(other.source) if other.source else "another template"
            raise PromptError(f"{t.label} redefines {t.ref} already defined by {where} with different content; "
                              "give it a new version number.")
        self._by_ref[t.ref] = t

    # -- queries -------------------------------------------------------------------------------
    def all(self) -> list[PromptTemplate]:
        return sorted(self._by_ref.values(), key=lambda t: (t.kind != "detect", t.id, t.version))

    def ids(self) -> list[str]:
        return sorted({t.id for t in self._by_ref.values()})

    def versions(self, id: str) -> list[PromptTemplate]:
        return sorted((t for t in self._by_ref.values() if t.id == id), key=lambda t: t.version)

    def latest(self, id: str) -> PromptTemplate:
        vs = self.versions(id)
        if not vs:
            raise PromptError(f"no prompt has id {id!r}; known ids: {', '.join(self.ids()) or 'none'}.")
        return vs[-1]

    def get(self, ref: str | PromptTemplate) -> PromptTemplate:
        """``id`` (latest version), ``id@version``, ``id@latest``, or a hash prefix of 6+ hex digits."""
        if isinstance(ref, PromptTemplate):
            return ref
        r = str(ref).strip()
        if r in self._by_ref:
            return self._by_ref[r]
        if "@" in r:
            pid, _, ver = r.partition("@")
            if ver == "latest" and self.versions(pid):
                return self.latest(pid)
            if not self.versions(pid):
                raise PromptError(f"no prompt has id {pid!r}; known ids: {', '.join(self.ids()) or 'none'}.")
            known = ", ".join(str(t.version) for t in self.versions(pid))
            raise PromptError(f"prompt {pid!r} has no version {ver!r}; versions: {known}.")
        if self.versions(r):
            return self.latest(r)
        if re.fullmatch(r"[0-9a-fA-F]{6,64}", r):
            hits = [t for t in self._by_ref.values() if t.hash.startswith(r.lower())]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise PromptError(f"hash prefix {r} matches {len(hits)} prompts ({', '.join(t.ref for t in hits)}); give more digits.")
        raise PromptError(f"no prompt matches {r!r}; use an id, id@version or a hash prefix of 6+ digits "
                          f"(known ids: {', '.join(self.ids()) or 'none'}).")

    def _default(self, kind: str, preferred: str) -> PromptTemplate:
        if self.versions(preferred):
            return self.latest(preferred)
        of_kind = [t for t in self.all() if t.kind == kind]
        if not of_kind:
            raise PromptError(f"no {kind} prompt is available in {', '.join(_display(d) for d in self.dirs) or 'the library'}.")
        return max(of_kind, key=lambda t: (t.language == "zh", t.version))

    def detect_default(self) -> PromptTemplate:
        """The latest version of ``ghost_probing``."""
        return self._default("detect", "ghost_probing")

    def chat_default(self) -> PromptTemplate:
        """The latest version of ``chat``."""
        return self._default("chat", "chat")

    # -- changes -------------------------------------------------------------------------------
    def save_new_version(
        self,
        base: PromptTemplate,
        *,
        system: str | None = None,
        user: str | None = None,
        few_shot: str | None = None,
        notes: str | None = None,
        version: int | None = None,
        dir: Path | None = None,
        title: str | None = None,
        answer_schema: str | None = None,
    ) -> PromptTemplate:
        """Write ``<id>.v<N>.yaml`` in ``dir`` (default: :func:`user_dir`) as a child of ``base``.

        N is ``version`` or one more than the highest known version of the id. Refuses with
        PromptError when id@N exists or when system, user, answer_schema and few_shot are all the
        same as an existing version of the id (the model would be asked the same thing). Pass
        ``few_shot=""`` to drop the base's examples."""
        existing = self.versions(base.id)
        n = version if version is not None else max([base.version, *(t.version for t in existing)]) + 1
        ref = f"{base.id}@{n}"
        if ref in self._by_ref:
            raise PromptError(f"{ref} already exists; versions are immutable, pick another version number.")
        target_dir = Path(dir) if dir is not None else user_dir()
        path = target_dir / f"{base.id}.v{n}.yaml"
        if path.exists():
            raise PromptError(f"{_display(path)} already exists; versions are immutable, pick another version number.")
        data = base.canonical()
        data.update(version=n, parent=base.ref)
        for k, v in (("system", system), ("user", user), ("few_shot", few_shot), ("notes", notes),
                     ("title", title), ("answer_schema", answer_schema)):
            if v is not None:
                data[k] = None if v == "" and k in ("few_shot", "notes", "answer_schema") else v
        new = PromptTemplate.from_dict(data, source=f"new version {ref}")
        for t in [base, *existing]:
            if t.content_hash == new.content_hash:
                raise PromptError(f"the new version asks the same as {t.ref}; change system, user, "
                                  "answer_schema or few_shot to make a new version.")
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(new.to_yaml(), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            raise PromptError(f"cannot write {_display(path)} ({e.strerror or e}).") from None
        saved = load_template(path)
        if target_dir not in self.dirs:
            self.dirs.append(target_dir)
        self._add(saved)
        return saved

    diff = staticmethod(diff)


def clip_variables(clip: Any, video_id: str | None = None) -> dict[str, Any]:
    """All clip variables from an :class:`engines.types.Clip` (duck-typed; no numpy import here).

    duration_s: seconds rounded to 1 decimal; num_frames: sampled frames; timestamps: "0.0s, 0.6s, …"
    (one decimal each); fps: the source video's frame rate rounded to 2 decimals; width/height: the
    source video's resolution (``clip.meta``), falling back to the sampled frame size; video_id:
    the file or folder name without extension unless given."""
    ts = [float(t) for t in (getattr(clip, "timestamps_s", None) or [])]
    frames = getattr(clip, "frames", None)
    shape = getattr(frames, "shape", None)
    num_frames = getattr(clip, "num_frames", None)
    if num_frames is None:
        num_frames = int(shape[0]) if shape is not None else len(ts)
    meta = getattr(clip, "meta", None)
    width = getattr(meta, "width", None) or (int(shape[2]) if shape is not None and len(shape) >= 3 else None)
    height = getattr(meta, "height", None) or (int(shape[1]) if shape is not None and len(shape) >= 3 else None)
    fps = float(getattr(clip, "fps", 0) or 0)
    source = str(getattr(clip, "source", "") or "")
    vid = video_id if video_id is not None else (Path(source.rstrip("/\\")).stem if source else "")
    return {
        "duration_s": round(float(getattr(clip, "duration_s", 0) or 0), 1),
        "num_frames": int(num_frames),
        "timestamps": ", ".join(f"{t:.1f}s" for t in ts),
        "fps": int(fps) if fps == int(fps) else round(fps, 2),
        "width": int(width) if width is not None else 0,
        "height": int(height) if height is not None else 0,
        "video_id": vid,
    }
