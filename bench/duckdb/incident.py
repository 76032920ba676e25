"""The incident benchmark's peer: DuckDB answering scope and attribution over the Parquet
export of the same ledger (`cordon export parquet`), in the same run as cordon.

Input: a JSON file (argv[1]) with `parquet`, `agents`, `since_ms`, `until_ms`, `sample`
(customer ids), `runs`. Output on stdout: JSON with both answers and every run's time.

The questions are the ones cordon answers, on the columns the export has:
- scope: per customer the suspects were shown in the window, first and last access and the
  fields revealed in the clear; per suspect, customers shown, customers revealed, first and
  last access;
- attribution: per agent that was shown any sample customer, how many it was shown (the
  rows it explains) and how many distinct customers it was ever shown (its volume).
Each run is a fresh query over the file; DuckDB caches nothing between them but the OS does
(the file is read once before timing so both tools start warm).
"""

import json
import sys
import time

import duckdb

# What the suspects were shown in the window, one row per customer per access.
SHOWN_IN_WINDOW = """
WITH shown AS (
  SELECT agent, action, fields, epoch_ms(time) AS t, unnest(shown) AS customer
  FROM read_parquet($parquet)
  WHERE allowed AND agent IN (SELECT unnest($agents))
    AND time BETWEEN make_timestamp($since_ms * 1000) AND make_timestamp($until_ms * 1000)
)
"""

SCOPE_CUSTOMERS = SHOWN_IN_WINDOW + """
SELECT customer, min(t), max(t),
       coalesce(list_sort(list_distinct(flatten(list(fields) FILTER (WHERE action = 'reveal')))), [])
FROM shown GROUP BY customer ORDER BY customer
"""

SCOPE_AGENTS = SHOWN_IN_WINDOW + """
SELECT agent, count(DISTINCT customer),
       count(DISTINCT customer) FILTER (WHERE action = 'reveal' AND len(fields) > 0),
       min(t), max(t)
FROM shown GROUP BY agent ORDER BY agent
"""

ATTRIBUTION = """
WITH shown AS (
  SELECT agent, unnest(shown) AS customer FROM read_parquet($parquet) WHERE allowed
)
SELECT agent, count(DISTINCT customer) FILTER (WHERE customer IN (SELECT unnest($sample))) AS explained,
       count(DISTINCT customer) AS volume
FROM shown GROUP BY agent HAVING explained > 0 ORDER BY agent
"""


def timed(connection, queries, parameters, runs):
    times = []
    answer = None
    for _ in range(runs):
        started = time.perf_counter()
        answer = [connection.execute(query, parameters).fetchall() for query in queries]
        times.append((time.perf_counter() - started) * 1000)
    return answer, times


def main(path):
    with open(path, encoding="utf-8") as file:
        job = json.load(file)
    connection = duckdb.connect()
    parquet = job["parquet"]
    connection.execute("SELECT count(*) FROM read_parquet($parquet)", {"parquet": parquet}).fetchall()
    window = {"parquet": parquet, "agents": job["agents"], "since_ms": job["since_ms"], "until_ms": job["until_ms"]}
    (customers, agents), scope_ms = timed(connection, [SCOPE_CUSTOMERS, SCOPE_AGENTS], window, job["runs"])
    (attribution,), attribution_ms = timed(
        connection, [ATTRIBUTION], {"parquet": parquet, "sample": job["sample"]}, job["runs"]
    )
    rows = connection.execute("SELECT count(*) FROM read_parquet($parquet)", {"parquet": parquet}).fetchone()[0]
    json.dump(
        {
            "duckdb": duckdb.__version__,
            "threads": connection.execute("SELECT current_setting('threads')").fetchone()[0],
            "rows": rows,
            "scope": {
                "customers": [[c, first, last, list(fields)] for c, first, last, fields in customers],
                "agents": [list(agent) for agent in agents],
            },
            "attribution": [list(agent) for agent in attribution],
            "scope_ms": scope_ms,
            "attribution_ms": attribution_ms,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
