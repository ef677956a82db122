-- index_usage_stats: each index of Assay's tables with how often it was
-- scanned and its size, for the deployment checklist (an index never
-- scanned after a day of traffic is a candidate for review). Read it with
-- `SELECT * FROM index_usage_stats` or `assayctl db index-usage`.
CREATE VIEW index_usage_stats AS
SELECT s.relname AS table_name,
       s.indexrelname AS index_name,
       s.idx_scan AS scans,
       s.idx_tup_read AS tuples_read,
       s.idx_tup_fetch AS tuples_fetched,
       pg_relation_size(s.indexrelid) AS size_bytes,
       pg_size_pretty(pg_relation_size(s.indexrelid)) AS size
FROM pg_stat_user_indexes s
WHERE s.schemaname = current_schema()
ORDER BY s.relname, s.indexrelname;
