-- 005_reserved.sql - PLACEHOLDER on the dmarcrecv branch only: number 005 belongs to the
-- dmarcagg helper's migration; the merge drops this file for theirs (an empty migration
-- keeps the numbering contiguous so migration 006 can be built and tested here).
SELECT 1;
