"""
End-to-end tests: real S3 clients (boto3, the aws cli v1 and v2, s3cmd, hand-made HTTP requests)
against the gateway daemon started with ``twistd`` on loopback.
"""
