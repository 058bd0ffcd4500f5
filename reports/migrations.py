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
