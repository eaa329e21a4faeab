-- Applies the erasure log again to the restored data.
SELECT postrunner.replay_erasures()
