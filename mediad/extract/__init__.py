"""What a worker process does with a file: the gate, MediaInfo, the summary and the record
the write-back reads, and the worker's own loop. Never imports the database layer.

Empty on purpose: a worker imports only the modules it uses (its boot time and memory
are measured, docs/benchmarks.md).
"""
