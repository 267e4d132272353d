-- SQLite has no schemas: the embedded database file itself plays the role of institution_enhancement.
-- Kept so both engines share the same migration versions in their pyway history.
SELECT 1;
