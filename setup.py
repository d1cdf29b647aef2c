from setuptools import find_packages, setup

setup(
    name="s3gateway",
    version="0.1.0",
    description="An S3-compatible HTTP gateway daemon on Twisted",
    packages=find_packages(include=["gateway", "gateway.*"]) + ["twisted.plugins"],
    package_data={"gateway": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=[
        "twisted>=23.10",
        "treq>=23.11",
        "zope.interface>=6",
        "attrs>=23.1",
        # CRC32C and CRC64NVME checksums (x-amz-checksum-*) in C: the hash runs over every
        # uploaded byte, so a pure-Python CRC would cap uploads at a few MB/s.
        "awscrt>=0.20",
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-twisted",
            "boto3",
            "awscli",
            "s3cmd",
            "psutil",
            "pytest-timeout",
            # Type checking (./tools/test runs it). mypy 2 no longer checks code for Python
            # 3.9, which this package supports; mypy-zope reads zope.interface declarations.
            "mypy>=1.10,<2",
            "mypy-zope",
        ],
    },
    entry_points={"console_scripts": ["s3gateway-admin = gateway.admin:main"]},
)
