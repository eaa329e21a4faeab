-- From here on, migrations hold the schema (tables, types, indexes, data changes) and
-- sql/ holds the current definition of every function, trigger and view, applied by
-- `postrunner migrate` after the migrations (src/db/definitions.rs lists the files in
-- order). This table records the checksum of each file as last applied, so that
-- `migrate` can say what changed and skip the work when nothing did.
--
-- The functions, triggers and views that V1-V10 created are replaced by their files in
-- sql/ on the first run of `migrate` after this one.
CREATE TABLE postrunner.sql_definitions (
    file       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
