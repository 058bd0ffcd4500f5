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

from prompts.library import BUNDLED_DIR, PromptLibrary, default_dirs, user_dir
from prompts.template import (ALLOWED_VARIABLES, CLIP_VARIABLES, CONTENT_FIELDS, FIELDS, KINDS, LANGUAGES,
                              REQUIRED, TEXT_FIELDS, PromptTemplate, diff, load_template)
from prompts.variables import clip_variables

__all__ = [
    "ALLOWED_VARIABLES",
    "BUNDLED_DIR",
    "CLIP_VARIABLES",
    "CONTENT_FIELDS",
    "FIELDS",
    "KINDS",
    "LANGUAGES",
    "REQUIRED",
    "TEXT_FIELDS",
    "PromptLibrary",
    "PromptTemplate",
    "clip_variables",
    "default_dirs",
    "diff",
    "load_template",
    "user_dir",
]
