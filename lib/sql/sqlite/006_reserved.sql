-- 006_reserved.sql - PLACEHOLDER on the spamuser branch only: number 006 belongs to another
-- helper's DMARC migration; the merge drops this file for theirs (an empty migration
-- keeps the numbering contiguous so migration 007 can be built and tested here).
SELECT 1;
