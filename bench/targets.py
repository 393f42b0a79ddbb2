"""The targets of issue 6."""

# Sync: wall time over the rate-limit floor.
SYNC_TARGET = 1.10
# Writes: bulk leads per second over the naive loop's.
WRITES_TARGET = 20
# Memory: peak RSS of a sync, and how much it may grow from the smallest to
# the largest size to be called flat.
MEMORY_TARGET_MB = 150
FLAT_SHARE = 0.15
# Pages: p95 server time on PostgreSQL; CSV export memory.
PAGES_TARGET_MS = 50
CSV_TARGET_MB = 100
