-- Which process on which host owns a running run, so a run whose process died (kill -9, power
-- loss) can be found and marked `killed` (resumable) instead of staying `running` forever.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN host TEXT;
