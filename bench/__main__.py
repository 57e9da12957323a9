"""`python -m bench`: the benchmark harness (see bench/README.md).

python -m bench [run] [--quick|--full] [--systems ...] [--workloads ...] [--mysql URL]
python -m bench calibrate [--repeat N]
python -m bench report bench/results/<run>.json [--docs docs/benchmarks.md]
python -m bench profile [--seconds N]
python -m bench loops [--rounds N]
python -m bench cpu [--rounds N] [--seconds N]
python -m bench drills [--only NAME ...] [--seconds N]
python -m bench balance [--processes N] [--seconds N]
python -m bench slow-body [--preset one-worker|default] [--sockets N] [--seconds N]
python -m bench storage [--seconds N] [--day N] [--without-retention]
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"], ["help"]):
        from bench.run import run_parser

        print(__doc__.strip())
        print()
        print("`python -m bench COMMAND --help` tells more about one command. The run:")
        print()
        print(run_parser().format_help())
        return 0
    command = argv[0] if argv and not argv[0].startswith("-") else "run"
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    if command == "run":
        from bench.run import main_run

        return main_run(rest)
    if command == "calibrate":
        from bench.calibrate import main_calibrate

        return main_calibrate(rest)
    if command == "report":
        from bench.report import main_report

        return main_report(rest)
    if command == "profile":
        from bench.hotpath import main_profile

        return main_profile(rest)
    if command == "drills":
        from bench.drills import main_drills

        return main_drills(rest)
    if command == "balance":
        from bench.worker_balance import main_balance

        return main_balance(rest)
    if command == "storage":
        from bench.storage_growth import main as main_storage

        return main_storage(rest)
    if command == "slow-body":
        from bench.slow_body import main_slow_body

        return main_slow_body(rest)
    if command == "loops":
        from bench.hotpath import main_loops

        return main_loops(rest)
    if command == "cpu":
        from bench.hotpath import main_cpu

        return main_cpu(rest)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
