"""``vectorstore bench``: vectorstore measured side by side with the raw drivers.

Every case loads one data set into vectorstore *and* into a hand-written baseline
(psycopg + pgvector with binary COPY, or sqlite-vec's ``vec0``) on the same server or
file system, then measures both with the same queries, warm caches and parameters.
A backend takes part by implementing :class:`vectorstore.spi.Benchmarkable`: the
baselines, written the way a careful user would by hand, live in the backend plugins
(``vectorstore_postgres.bench``, ``vectorstore_sqlite.bench``), and the core finds
them through the plugin registry.

- :mod:`.datasets` -- the clustered synthetic set and MiniLM sentence embeddings;
- :mod:`.measure` -- latency percentiles, recall, throughput, concurrency helpers;
- :mod:`.runner` -- one case on any backend that implements the protocol, both sides, every measurement;
- :mod:`.ceiling` -- pgbench sending the backend's own statements (where it offers them);
- :mod:`.report` -- the terminal table, the JSON file and the latency-vs-recall chart.
"""
