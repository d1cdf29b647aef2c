"""
s3gateway: an S3-compatible HTTP gateway in front of per-user storage connections.
"""
