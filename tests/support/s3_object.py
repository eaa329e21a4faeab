"""Reads, replaces or deletes one object in an S3-compatible bucket with boto3 (AWS's
own SDK, which moto depends on: none of it postrunner's code), signed as AWS does.

stdin:  {"endpoint", "bucket", "key", "op": "get" | "put" | "delete", "body": base64 (put)}
stdout: {"found": bool, "body": base64 (get)}
"""

import base64
import json
import sys

import boto3
from botocore.exceptions import ClientError

request = json.load(sys.stdin)
s3 = boto3.client("s3", endpoint_url=request["endpoint"], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
bucket, key, op = request["bucket"], request["key"], request["op"]
answer = {"found": True}
if op == "get":
    try:
        answer["body"] = base64.b64encode(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).decode()
    except ClientError:
        answer = {"found": False}
elif op == "put":
    s3.put_object(Bucket=bucket, Key=key, Body=base64.b64decode(request["body"]))
elif op == "delete":
    s3.delete_object(Bucket=bucket, Key=key)
json.dump(answer, sys.stdout)
