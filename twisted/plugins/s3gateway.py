"""
The twistd plugin: ``twistd s3gateway``. All logic lives in L{gateway.tap}.
"""

from twisted.application.service import ServiceMaker

s3gateway = ServiceMaker(
    "s3gateway",
    "gateway.tap",
    "An S3-compatible HTTP gateway to per-user storage connections.",
    "s3gateway",
)
