import sys

if __name__ == "__main__":
    # Inside the guard: spawned workers import this module as __mp_main__, and must not
    # pay for the CLI's imports (psycopg, structlog, prometheus-client...).
    from mediad.cli import main

    sys.exit(main())
