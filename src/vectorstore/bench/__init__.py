"""``vectorstore bench``: vectorstore measured side by side with the raw drivers.

Every case loads one data set into vectorstore *and* into a hand-written baseline
(psycopg + pgvector with binary COPY, or sqlite-vec's ``vec0``) on the same server or
file system, then measures both with the same queries, warm caches and parameters:

- :mod:`.datasets` -- the clustered synthetic set and MiniLM sentence embeddings;
- :mod:`.raw` -- the baselines, written the way a careful user would by hand;
- :mod:`.measure` -- latency percentiles, recall, throughput, concurrency helpers;
- :mod:`.runner` -- one case, both sides, every measurement;
- :mod:`.report` -- the terminal table, the JSON file and the latency-vs-recall chart.
"""
