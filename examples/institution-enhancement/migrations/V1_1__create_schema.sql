-- The job's tables live in their own schema, never in public; pyway's history table stays in public.
CREATE SCHEMA IF NOT EXISTS institution_enhancement;
