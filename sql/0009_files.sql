-- Project files: each file's metadata in files, its content in
-- file_chunks, pieces of at most 256 KiB in order, so that assay-api
-- writes and reads a file piece by piece and never holds all of it. A
-- text file (UTF-8, no NUL) keeps the text of its first 256 KiB for full
-- text search (search_text, indexed as search).

CREATE TABLE files (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path          text NOT NULL COLLATE "C"
                  CHECK (path ~ '^[A-Za-z0-9._-][A-Za-z0-9._/-]*$' AND octet_length(path) <= 512),
    size          bigint NOT NULL CHECK (size >= 0),
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type  text NOT NULL,
    search_text   text,
    search        tsvector GENERATED ALWAYS AS
                  (to_tsvector('english', coalesce(search_text, ''))) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, path)
);
CREATE INDEX files_search ON files USING gin (search);

CREATE TABLE file_chunks (
    file_id  bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    seq      integer NOT NULL CHECK (seq >= 0),
    data     bytea NOT NULL,
    PRIMARY KEY (file_id, seq)
);

-- A file as listings show it.
CREATE FUNCTION assay_file_json(f files) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'path', f.path, 'size', f.size, 'content_type', f.content_type,
        'etag', '"' || f.sha256 || '"', 'updated_at', assay_ts(f.updated_at))
$$;
