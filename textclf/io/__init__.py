"""Reading and writing files: the data sources users point ``data.source`` at (also predict's inputs),
the files stages pass each other (Parquet, JSON, ``.npy``), and outputs written atomically that never
replace what this project did not write."""
