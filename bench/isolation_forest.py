#!/usr/bin/env python3
"""A third baseline for `cordon eval`: scikit-learn's IsolationForest over per agent-hour
feature rows, at cordon's false-suspension budget.

    cordon eval scenarios/*.toml --seeds 5 --features /tmp/features.csv
    python3 bench/isolation_forest.py /tmp/features.csv [--budget 0.1]

The first run creates bench/.venv-iforest and installs scikit-learn from PyPI into it.

For each scenario and seed, a forest is fitted on that run's rows (unsupervised: labels are
never shown to it). An agent is suspended at the first hour whose anomaly score passes a
threshold; the threshold is the lowest that keeps honest agents' suspensions within the
budget per 1,000 agent-days over all runs. An insider's exposure is the sum of the distinct
customers its own moves reached in each hour up to and including that one, since an hour's
features exist only once it is over (customers seen in two hours count twice, so this
slightly overstates exposure).
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv-iforest")
FEATURES = [
    "accesses", "customers", "reveals", "unexplained", "other_requester", "beyond_need",
    "off_shift", "searches", "search_misses",
]


def ensure_environment():
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "scikit-learn==1.7.2", "numpy"], check=True)
    os.execv(python, [python, *sys.argv])


def main():
    ensure_environment()
    import csv
    from collections import defaultdict

    import numpy as np
    from sklearn.ensemble import IsolationForest

    args = sys.argv[1:]
    if not args:
        sys.exit("usage: isolation_forest.py FEATURES.csv [--budget PER_1000_AGENT_DAYS]")
    path = args[0]
    budget = float(args[args.index("--budget") + 1]) if "--budget" in args else 0.1
    runs = defaultdict(list)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            runs[(row["scenario"], row["seed"])].append(row)
    if not runs:
        sys.exit(f"`{path}` has no feature rows")

    # Score every run, then pick one threshold for all.
    scored = []
    agent_days = 0
    for key, rows in sorted(runs.items()):
        matrix = np.array([[float(row[name]) for name in FEATURES] for row in rows])
        forest = IsolationForest(n_estimators=200, random_state=0).fit(matrix)
        anomaly = -forest.score_samples(matrix)
        agent_days += len({(row["agent"], int(row["hour"]) // 24) for row in rows})
        scored.append((key, rows, anomaly))

    insiders = {(key, row["agent"]) for key, rows, _ in scored for row in rows if int(row["malicious"]) > 0}

    def first_alarm(threshold):
        alarms = {}
        for key, rows, anomaly in scored:
            for row, value in sorted(zip(rows, anomaly), key=lambda pair: int(pair[0]["hour"])):
                agent = (key, row["agent"])
                if value >= threshold and agent not in alarms:
                    alarms[agent] = int(row["hour"])
        return alarms

    allowed = budget * agent_days / 1000.0
    candidates = sorted({value for _, _, anomaly in scored for value in anomaly}, reverse=True)
    threshold = candidates[0] + 1.0
    for value in candidates:
        honest = sum(1 for agent in first_alarm(value) if agent not in insiders)
        if honest > allowed:
            break
        threshold = value
    alarms = first_alarm(threshold)

    exposure = defaultdict(int)
    for key, rows, _ in scored:
        for row in rows:
            agent = (key, row["agent"])
            # An hour's features exist once the hour is over: its own moves are exposed too.
            if agent in insiders and int(row["hour"]) <= alarms.get(agent, 1 << 62):
                exposure[agent] += int(row["malicious_customers"])
    caught = sum(1 for agent in insiders if agent in alarms)
    honest = sum(1 for agent in alarms if agent not in insiders)
    values = sorted(exposure[agent] for agent in insiders)
    median = values[len(values) // 2] if values else 0
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))] if values else 0
    print(f"isolation forest over {len(scored)} runs, {agent_days} agent-days, budget {budget} per 1,000 agent-days")
    print(f"  insiders caught {caught}/{len(insiders)}; exposure median {median}, p95 {p95}")
    print(f"  false suspensions {honest} ({1000.0 * honest / max(agent_days, 1):.2f} per 1,000 agent-days)")
    for agent in sorted(insiders):
        state = f"caught at hour {alarms[agent]}" if agent in alarms else "not caught"
        (scenario, seed), name = agent
        print(f"  {scenario} seed {seed} {name}: {state}, exposure {exposure[agent]}")


if __name__ == "__main__":
    main()
