-- mediad schema, version 16: files_finished_at_idx holds only rows that have finished.
--
-- No update of a file is HOT (the claim and the write-back change `state`, which the
-- partial indexes' predicates read), so each one adds an entry to every index whose
-- predicate the new row version meets. The claim of a file never finished before (the
-- first scan of a library) added one with a NULL finished_at here, which no reader ever
-- looks up: the statements that read this index (`status`, `top`, `extract --all`) all
-- ask for rows that finished. Without those entries the claim costs PostgreSQL about 6 us
-- of CPU less per row (bench.writecost, docs/benchmarks.md).
--
-- Built while the migration holds the table: on a table of millions of rows, a few
-- seconds in which nothing is written.
DROP INDEX {schema}.files_finished_at_idx;
CREATE INDEX files_finished_at_idx ON {schema}.files (finished_at)
    WHERE finished_at IS NOT NULL;
