"""
The side-by-side benchmark: the gateway against peer S3 servers and the machine's own limits.

``python bench/run.py`` is the command; ``bench/README.md`` says what it measures and how.
"""
