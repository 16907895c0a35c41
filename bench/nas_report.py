"""The printed report of `python -m bench.nas` (a slow mount)."""

from __future__ import annotations

from typing import Any

from bench.nas_mount import CONTENDERS


def report(results: dict[str, Any]) -> None:
    env = results["environment"]
    print(
        f"\nmediad on a FUSE mount answering every read {results['lag_ms']:g} ms late: "
        f"{results['files']} files, median of {results['rounds']} alternating rounds; "
        f"mediad {env['mediad_commit']}, mediainfo CLI {env['mediainfo_cli'] or 'not installed'}\n"
    )
    headers = (
        "W",
        "contender",
        "files/s",
        "rounds",
        "1st result s",
        "lookups+stats",
        "opens",
        "reads",
        "KiB read",
        "server ms",
    )
    rows = []
    for workers, row in results["by_workers"].items():
        for name in CONTENDERS:
            run = row.get(name)
            if run is None:
                continue
            ops, first = run["ops_per_file"], run["first_result_seconds"]
            rows.append(
                (
                    workers,
                    name.replace("_", " "),
                    f"{run['files_per_s']:.1f}",
                    " ".join(f"{r:.0f}" for r in run["files_per_s_by_round"]),
                    "-" if first is None else f"{first:.2f}",
                    f"{ops['getattr']:.1f}",
                    f"{ops['open']:.1f}",
                    f"{ops['read']:.1f}",
                    f"{ops['read_bytes'] / 1024:.0f}",
                    f"{run['fuse_server_cpu_ms_per_file']:.2f}",
                )
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "1st result: when the first row was written, from the enqueue (from the launch);"
        " per file: operations asked of the mount, and the CPU its server spent on them\n"
    )
    for workers, row in results["by_workers"].items():
        for name in ("mediad", "mediad_from_launch", "compared", "compared_from_launch"):
            key = f"{name}_over_cli_median"
            if key in row:
                print(
                    f"  W={workers}: {name.replace('_', ' ')} / CLI = {row[key]} "
                    f"(rounds {row[f'{name}_over_cli_by_round']})"
                )
    loaded = [
        f"W={w} {name}"
        for w, row in results["by_workers"].items()
        for name in CONTENDERS
        if (row.get(name) or {}).get("other_load_cores_max", 0) > 0.2
    ]
    if loaded:
        print(f"WARNING: other load on this machine during {', '.join(loaded)}: not clean figures")
