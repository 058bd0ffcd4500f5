"""Schema migrations: an ordered list of named functions, each applied once and recorded.

The pattern of simonw/llm's ``migrations.py``. Never edit or reorder a migration that has shipped:
append a new one. Each runs inside one transaction together with its record in ``_migrations``.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_videos(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE videos (
            video_id    TEXT PRIMARY KEY,   -- file name, e.g. images_5_046.avi
            sha256      TEXT NOT NULL,
            path        TEXT NOT NULL,      -- absolute path inside a library root or the uploads folder
            origin      TEXT NOT NULL,      -- library | upload | demo
            size_bytes  BIGINT,
            frames      INTEGER,
            fps         DOUBLE,
            duration_s  DOUBLE,
            width       INTEGER,
            height      INTEGER,
            codec       TEXT,
            added_at    TIMESTAMP DEFAULT current_timestamp
        )
        """
    )


@migration
def m002_labels(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE label_sets (
            name        TEXT PRIMARY KEY,
            source      TEXT NOT NULL,      -- csv:<file> | preset:<name> | correction:<parent set>
            weak        BOOLEAN NOT NULL DEFAULT false,  -- category presets are weak labels
            description TEXT,
            created_at  TIMESTAMP DEFAULT current_timestamp
        )
        """
    )
    db.execute(
        """
        CREATE TABLE labels (
            label_set     TEXT NOT NULL,
            video_id      TEXT NOT NULL,
            ghost_probing BOOLEAN NOT NULL,
            kind          TEXT NOT NULL,     -- ghost_probing | cut_in | none
            onset_s       DOUBLE,
            note          TEXT,
            source        TEXT,
            PRIMARY KEY (label_set, video_id)
        )
        """
    )


@migration
def m003_prompts(db: duckdb.DuckDBPyConnection) -> None:
    # A prompt version is immutable and identified by the hash of its content.
    db.execute(
        """
        CREATE TABLE prompts (
            hash        TEXT PRIMARY KEY,
            id          TEXT NOT NULL,
            version     TEXT NOT NULL,
            parent      TEXT,               -- hash or id@version of the version it was edited from
            language    TEXT,
            body        TEXT NOT NULL,      -- the YAML text
            origin      TEXT NOT NULL,      -- file | ui
            created_at  TIMESTAMP DEFAULT current_timestamp
        )
        """
    )


@migration
def m004_runs(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE runs (
            run_id         TEXT PRIMARY KEY,
            name           TEXT,
            engine         TEXT NOT NULL,
            model          TEXT,
            revision       TEXT,
            prompt_id      TEXT,
            prompt_version TEXT,
            prompt_hash    TEXT,
            options        JSON,
            sampling       JSON,
            label_set      TEXT,
            selection      JSON,            -- the video ids asked for
            location       TEXT,            -- where it ran: price catalogue key or free text
            instances      INTEGER DEFAULT 1,
            status         TEXT NOT NULL,   -- running | done | cancelled | failed | imported
            created_at     TIMESTAMP DEFAULT current_timestamp,
            finished_at    TIMESTAMP,
            notes          TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE predictions (
            run_id            TEXT NOT NULL,
            video_id          TEXT NOT NULL,
            sha256            TEXT,
            ghost_probing     BOOLEAN,      -- NULL when unparsed or errored: never a silent "no"
            confidence        DOUBLE,
            danger_level      TEXT,
            object_type       TEXT,
            onset_s           DOUBLE,
            reason            TEXT,
            status            TEXT NOT NULL, -- ok | unparsed | error
            raw               TEXT,
            latency_s         DOUBLE,
            decode_s          DOUBLE,
            preprocess_s      DOUBLE,
            generate_s        DOUBLE,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            cached            BOOLEAN DEFAULT false,
            created_at        TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (run_id, video_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE reviews (
            run_id     TEXT NOT NULL,
            video_id   TEXT NOT NULL,
            mark       TEXT NOT NULL,       -- agree | disagree | unsure | label-wrong
            comment    TEXT,
            reviewer   TEXT,
            created_at TIMESTAMP DEFAULT current_timestamp
        )
        """
    )


@migration
def m005_chats(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE chats (
            chat_id           TEXT NOT NULL,
            turn              INTEGER NOT NULL,
            video_id          TEXT,
            sha256            TEXT,
            engine            TEXT NOT NULL,
            model             TEXT,
            revision          TEXT,
            prompt_hash       TEXT,
            kind              TEXT NOT NULL,  -- chat | detect
            question          TEXT,
            answer            TEXT,
            verdict           JSON,
            options           JSON,
            sampling          JSON,
            latency_s         DOUBLE,
            decode_s          DOUBLE,
            preprocess_s      DOUBLE,
            generate_s        DOUBLE,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            error             TEXT,
            created_at        TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (chat_id, turn)
        )
        """
    )


@migration
def m006_cache(db: duckdb.DuckDBPyConnection) -> None:
    # Response cache keyed by a hash of everything that changes the answer (deterministic settings only).
    db.execute(
        """
        CREATE TABLE response_cache (
            key               TEXT PRIMARY KEY,
            engine            TEXT,
            model             TEXT,
            answer            TEXT,
            verdict           JSON,
            latency_s         DOUBLE,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            created_at        TIMESTAMP DEFAULT current_timestamp
        )
        """
    )


@migration
def m007_prices(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE prices (
            provider        TEXT NOT NULL,   -- azure | aws | openai | local | ...
            sku             TEXT NOT NULL,   -- e.g. Standard_NC24s_v3, ml.g5.xlarge, gpt-4o
            region          TEXT NOT NULL DEFAULT '',
            gpus            INTEGER,
            gpu_type        TEXT,
            usd_per_hour    DOUBLE,
            usd_per_1m_input_tokens  DOUBLE,
            usd_per_1m_output_tokens DOUBLE,
            source          TEXT,
            as_of           DATE,
            edited          BOOLEAN DEFAULT false,
            PRIMARY KEY (provider, sku, region)
        )
        """
    )


# -- the response log (issue: one prediction pipeline, one response log) ---------------------------
# Every model call — a detect, a chat turn, an eval prediction, an imported answer — is one row of
# ``responses`` (simonw/llm's ``responses`` table is the model). ``predictions`` and ``chats`` become
# views over it with their old columns, so every reader keeps working; the response cache maps a key
# to the response that answered. ``latency_s`` is end to end (decode + the engine); ``model_s`` is the
# engine alone. Old rows recorded the engine's time in ``latency_s`` and decoding apart in
# ``decode_s``: they are moved with ``model_s`` = the old latency and ``latency_s`` = decode + model.
# No primary key or index on responses/runs: DuckDB refuses ALTER TABLE on an indexed table, and the
# write path keeps ids unique (a sequence) and one current answer per (run, video).
_VERDICT_JSON = """CASE WHEN {p}status IS NULL THEN NULL ELSE json_object(
    'ghost_probing', {p}ghost_probing, 'confidence', {p}confidence, 'danger_level', {p}danger_level,
    'object_type', {p}object_type, 'onset_s', {p}onset_s, 'reason', coalesce({p}reason, ''),
    'status', {p}status, 'raw', coalesce({p}response, '')) END"""

PREDICTIONS_VIEW = """
CREATE OR REPLACE VIEW predictions AS
SELECT run_id, video_id, sha256, ghost_probing, confidence, danger_level, object_type, onset_s, reason, status,
       response AS raw, latency_s, decode_s, preprocess_s, generate_s, model_s, prompt_tokens, completion_tokens,
       cached, created_at, id AS response_id, engine, model, device, error
FROM responses WHERE run_id IS NOT NULL AND current
"""

CHATS_VIEW = f"""
CREATE OR REPLACE VIEW chats AS
SELECT chat_id, turn, video_id, sha256, engine, model, revision, prompt_hash, kind, question, response AS answer,
       {_VERDICT_JSON.format(p='')} AS verdict, options, sampling, latency_s, decode_s, preprocess_s, generate_s,
       model_s, prompt_tokens, completion_tokens, error, created_at, id AS response_id, cached, device, endpoint
FROM responses WHERE chat_id IS NOT NULL AND kind IN ('chat', 'detect')
"""


@migration
def m008_responses(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("CREATE SEQUENCE responses_seq START 1")
    db.execute(
        """
        CREATE TABLE responses (
            id                BIGINT NOT NULL DEFAULT nextval('responses_seq'),
            created_at        TIMESTAMP DEFAULT current_timestamp,
            kind              TEXT NOT NULL,   -- detect | chat | eval | import | cache-legacy
            run_id            TEXT,            -- eval / import answers: the run
            chat_id           TEXT,            -- detect / chat turns: the chat and its turn number
            turn              INTEGER,
            current           BOOLEAN NOT NULL DEFAULT true,  -- false once a run's video was answered again
            video_id          TEXT,
            sha256            TEXT,            -- of the file bytes at the time of the call
            engine            TEXT NOT NULL,
            engine_kind       TEXT,            -- chat | detector | batch
            model             TEXT,            -- what the identity resolved before the call
            model_reported    TEXT,            -- what the response itself said it was
            revision          TEXT,
            endpoint          TEXT,            -- scheme://host[:port]/path, never credentials
            identity          JSON,            -- engines.base.EngineIdentity
            identity_hash     TEXT,
            cache_key         TEXT,
            prompt_hash       TEXT,            -- text in prompts
            question          TEXT,            -- the last user message (detect prompt or chat question)
            response          TEXT,            -- the model's text (a detector: its verdict as JSON)
            ghost_probing     BOOLEAN,         -- NULL unless status = ok: never a silent "no"
            confidence        DOUBLE,
            danger_level      TEXT,
            object_type       TEXT,
            onset_s           DOUBLE,
            reason            TEXT,
            status            TEXT,            -- ok | unparsed | error; NULL for a chat answer
            options           JSON,
            sampling          JSON,
            latency_s         DOUBLE,          -- end to end: decode + engine
            decode_s          DOUBLE,
            preprocess_s      DOUBLE,
            generate_s        DOUBLE,
            model_s           DOUBLE,          -- the engine alone
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            device            TEXT,
            cached            BOOLEAN NOT NULL DEFAULT false,
            cached_from       BIGINT,          -- the response whose answer a cache hit repeats
            error             TEXT,
            extra             JSON,
            artifacts         JSON             -- a detector's tracks/thresholds/box count (maps are not stored here)
        )
        """
    )
    tables = {r[0] for r in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    # predictions → responses (kind eval, or import for imported runs)
    db.execute(
        """
        INSERT INTO responses (created_at, kind, run_id, current, video_id, sha256, engine, model, revision,
                               prompt_hash, response, ghost_probing, confidence, danger_level, object_type, onset_s,
                               reason, status, options, sampling, latency_s, decode_s, preprocess_s, generate_s,
                               model_s, prompt_tokens, completion_tokens, cached, extra)
        SELECT p.created_at, CASE WHEN r.status = 'imported' THEN 'import' ELSE 'eval' END, p.run_id, true,
               p.video_id, p.sha256, coalesce(r.engine, 'unknown'), r.model, r.revision, r.prompt_hash, p.raw,
               p.ghost_probing, p.confidence, p.danger_level, p.object_type, p.onset_s, p.reason, p.status,
               r.options, r.sampling,
               CASE WHEN p.latency_s IS NULL THEN NULL ELSE p.latency_s + coalesce(p.decode_s, 0) END,
               p.decode_s, p.preprocess_s, p.generate_s, p.latency_s, p.prompt_tokens, p.completion_tokens,
               coalesce(p.cached, false), '{"migrated_from": "predictions"}'
        FROM predictions p LEFT JOIN runs r USING (run_id)
        ORDER BY p.created_at, p.run_id, p.video_id
        """
    )
    if "chats" in tables:
        db.execute(
            """
            INSERT INTO responses (created_at, kind, chat_id, turn, video_id, sha256, engine, model, revision,
                                   prompt_hash, question, response, ghost_probing, confidence, danger_level,
                                   object_type, onset_s, reason, status, options, sampling, latency_s, decode_s,
                                   preprocess_s, generate_s, model_s, prompt_tokens, completion_tokens, error, extra)
            SELECT created_at, kind, chat_id, turn, video_id, sha256, engine, model, revision, prompt_hash, question,
                   answer,
                   CASE WHEN verdict->>'status' = 'ok' THEN (verdict->>'ghost_probing')::BOOLEAN END,
                   (verdict->>'confidence')::DOUBLE, verdict->>'danger_level', verdict->>'object_type',
                   (verdict->>'onset_s')::DOUBLE, verdict->>'reason', verdict->>'status', options, sampling,
                   CASE WHEN latency_s IS NULL THEN NULL ELSE latency_s + coalesce(decode_s, 0) END,
                   decode_s, preprocess_s, generate_s, latency_s, prompt_tokens, completion_tokens, error,
                   '{"migrated_from": "chats"}'
            FROM chats ORDER BY created_at, chat_id, turn
            """
        )
    if "response_cache" in tables:
        # Old cache keys cannot be hit by the new identity keys; their answers are kept in the log.
        db.execute(
            """
            INSERT INTO responses (created_at, kind, engine, model, response, ghost_probing, confidence,
                                   danger_level, object_type, onset_s, reason, status, model_s, latency_s,
                                   prompt_tokens, completion_tokens, current, extra)
            SELECT created_at, 'cache-legacy', coalesce(engine, 'unknown'), model, answer,
                   CASE WHEN verdict->>'status' = 'ok' THEN (verdict->>'ghost_probing')::BOOLEAN END,
                   (verdict->>'confidence')::DOUBLE, verdict->>'danger_level', verdict->>'object_type',
                   (verdict->>'onset_s')::DOUBLE, verdict->>'reason', coalesce(verdict->>'status', 'unparsed'),
                   latency_s, latency_s, prompt_tokens, completion_tokens, false,
                   json_object('migrated_from', 'response_cache', 'legacy_key', key)
            FROM response_cache ORDER BY created_at
            """
        )
        db.execute("DROP TABLE response_cache")
    db.execute("DROP TABLE predictions")
    if "chats" in tables:
        db.execute("DROP TABLE chats")
    db.execute(
        """
        CREATE TABLE response_cache (
            key         TEXT PRIMARY KEY,   -- EngineIdentity.cache_key(clip sha256)
            response_id BIGINT NOT NULL,
            created_at  TIMESTAMP DEFAULT current_timestamp
        )
        """
    )
    db.execute(PREDICTIONS_VIEW)
    db.execute(CHATS_VIEW)


@migration
def m009_run_coverage(db: duckdb.DuckDBPyConnection) -> None:
    """Runs learn their coverage (planned videos, the ones missing from the library), the engine identity
    they ran with, whether they are hidden, and the cloud job they came from. The table is rebuilt without
    its primary-key index so later migrations can ALTER it; create_run keeps run ids unique."""
    db.execute(
        """
        CREATE TABLE runs_v2 (
            run_id         TEXT NOT NULL,
            name           TEXT,
            engine         TEXT NOT NULL,
            engine_kind    TEXT,            -- chat | detector | batch
            model          TEXT,
            revision       TEXT,
            endpoint       TEXT,
            identity       JSON,            -- engines.base.EngineIdentity (without the clip)
            identity_hash  TEXT,
            prompt_id      TEXT,            -- NULL for detectors: they take no prompt
            prompt_version TEXT,
            prompt_hash    TEXT,
            options        JSON,
            sampling       JSON,
            label_set      TEXT,
            selection      JSON,            -- the video ids asked for (in the library)
            planned        INTEGER,         -- videos the run set out to answer, missing ones included
            missing        JSON,            -- planned videos that were not in the library
            location       TEXT,
            instances      INTEGER DEFAULT 1,
            status         TEXT NOT NULL,   -- running | done | partial | cancelled | failed | imported
            hidden         BOOLEAN NOT NULL DEFAULT false,
            job_id         TEXT,            -- the cloud job whose outputs this run ingested
            output_dir     TEXT,            -- where `eval --output` wrote the run folder
            created_at     TIMESTAMP DEFAULT current_timestamp,
            finished_at    TIMESTAMP,
            notes          TEXT
        )
        """
    )
    db.execute(
        """
        INSERT INTO runs_v2 (run_id, name, engine, model, revision, prompt_id, prompt_version, prompt_hash, options,
                             sampling, label_set, selection, planned, missing, location, instances, status,
                             created_at, finished_at, notes)
        SELECT run_id, name, engine, model, revision, prompt_id, prompt_version, prompt_hash, options, sampling,
               label_set, selection, json_array_length(selection), '[]', location, instances, status,
               created_at, finished_at, notes
        FROM runs ORDER BY created_at
        """
    )
    db.execute("DROP TABLE runs")
    db.execute("ALTER TABLE runs_v2 RENAME TO runs")


@migration
def m011_jobs(db: duckdb.DuckDBPyConnection) -> None:
    """Cloud jobs and endpoints (reports.jobs), their state changes, and the run folders ingested as runs
    (reports.run_folder: one row per folder origin, so ingesting twice never duplicates)."""
    db.execute(
        """
        CREATE TABLE jobs (
            job_id          TEXT PRIMARY KEY,  -- backend:name, e.g. azureml:gp-eval-r2026…, sagemaker-endpoint:gp-vlm
            backend         TEXT NOT NULL,     -- azureml | sagemaker
            kind            TEXT NOT NULL,     -- job | endpoint | transform
            name            TEXT NOT NULL,     -- the provider's own name
            state           TEXT NOT NULL,     -- queued | running | completed | failed | canceled | deleted
            provider_state  TEXT,              -- the provider's word for it (Running, InService, …)
            compute         TEXT,
            instance_type   TEXT,
            instance_count  INTEGER,
            location        TEXT,              -- price-catalogue key, e.g. azure:Standard_NC24s_v3
            created_at      TIMESTAMP,
            started_at      TIMESTAMP,
            ended_at        TIMESTAMP,
            refreshed_at    TIMESTAMP,
            run_id          TEXT,              -- the run its outputs were ingested as
            url             TEXT,              -- the job in the provider's studio/console (no secrets)
            spec            JSON,              -- what was submitted (no secrets)
            message         TEXT,
            cost_usd        DOUBLE,            -- NULL = unknown (no price for the SKU)
            cost_note       TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE job_events (
            job_id   TEXT NOT NULL,
            "at"     TIMESTAMP NOT NULL,   -- quoted: AT is a DuckDB keyword
            state    TEXT NOT NULL,
            message  TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE run_folders (
            origin       TEXT PRIMARY KEY,      -- the manifest's run_id (the run that wrote the folder)
            run_id       TEXT NOT NULL,         -- the run it was ingested as
            job_id       TEXT,
            folder       TEXT,
            records      INTEGER,
            status       TEXT,                  -- the manifest's status when ingested
            ingested_at  TIMESTAMP DEFAULT current_timestamp
        )
        """
    )


@migration
def m010_vad(db: duckdb.DuckDBPyConnection) -> None:
    # Anomaly engines (motion map, AI-VAD, SageMaker): one row per response, its per-frame scores and
    # per-box scores (reports/vad.py). cache_key = engine identity + clip SHA-256: reused, never rerun.
    db.execute(
        """
        CREATE TABLE vad_runs (
            response_id    BIGINT PRIMARY KEY, -- responses.id
            cache_key      TEXT NOT NULL,
            sha256         TEXT,
            video_id       TEXT,
            engine         TEXT,
            identity       JSON,
            verdict        JSON,
            call           JSON,
            summary        JSON,               -- Artifacts.summary(): tracks, thresholds, extra
            maps           BLOB,               -- uint8 [T, h, w] maps as compressed .npz bytes
            map_times      JSON,
            random_weights BOOLEAN DEFAULT false,
            created_at     TIMESTAMP DEFAULT current_timestamp
        )
        """
    )
    db.execute("CREATE INDEX vad_runs_key ON vad_runs (cache_key)")
    db.execute(
        """
        CREATE TABLE vad_frames (
            response_id BIGINT NOT NULL,
            frame       INTEGER NOT NULL,      -- index into the clip's sampled frames
            t           DOUBLE NOT NULL,       -- seconds from the start of the video
            score       DOUBLE,
            PRIMARY KEY (response_id, frame)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE vad_boxes (
            response_id BIGINT NOT NULL,
            frame       INTEGER NOT NULL,
            t           DOUBLE NOT NULL,
            x1 DOUBLE, y1 DOUBLE, x2 DOUBLE, y2 DOUBLE,  -- pixels of the frame as sampled
            score       DOUBLE,
            label       TEXT
        )
        """
    )
