"""The prompt library: every template found in the bundled and the user's folders, by id, id@version or hash."""

from __future__ import annotations

import re
from pathlib import Path

from engines.errors import PromptError
from prompts.template import PromptTemplate, _display, diff, load_template

BUNDLED_DIR = Path(__file__).resolve().parent / "templates"


def default_dirs() -> list[Path]:
    """Bundled templates, then the user's folders (engines.settings: $GHOSTPROBE_PROMPTS, else
    <data dir>/prompts) that exist."""
    from engines.settings import current

    s = current()
    if s.get("GHOSTPROBE_PROMPTS"):
        return [BUNDLED_DIR, *s.prompt_dirs]
    return [BUNDLED_DIR, *(d for d in s.prompt_dirs if d.is_dir())]


def user_dir() -> Path:
    """Where new versions are saved by default: the first user folder."""
    from engines.settings import current

    return current().prompt_dirs[0]


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
