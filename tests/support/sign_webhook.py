#!/usr/bin/env python3
"""Signs test webhooks the way each provider does, with code that is not postrunner's:
the svix library (Resend), Python's cryptography (SendGrid's ECDSA P-256) and hmac
(Mailgun). Reads one JSON request on stdin, prints one JSON answer on stdout.

  {"op": "sendgrid-key"}                              -> {"private_pem", "public_b64"}
  {"op": "sendgrid", "private_pem", "timestamp", "body"} -> {"headers"}
  {"op": "mailgun", "key", "timestamp", "token", "event_data"} -> {"body"}
  {"op": "resend", "secret", "id", "timestamp", "body"}   -> {"headers"}
  {"op": "postmark", "user", "password"}                  -> {"headers"}
"""
import base64
import datetime
import hashlib
import hmac
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def sendgrid_key(_):
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {"private_pem": private.decode(), "public_b64": base64.b64encode(public).decode()}


def sendgrid(req):
    key = serialization.load_pem_private_key(req["private_pem"].encode(), password=None)
    signed = str(req["timestamp"]).encode() + req["body"].encode()
    signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return {"headers": {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(req["timestamp"]),
    }}


def mailgun(req):
    timestamp, token = str(req["timestamp"]), req["token"]
    signature = hmac.new(req["key"].encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": req["event_data"]}
    return {"body": json.dumps(body)}


def resend(req):
    from svix.webhooks import Webhook
    at = datetime.datetime.fromtimestamp(int(req["timestamp"]), tz=datetime.timezone.utc)
    signature = Webhook(req["secret"]).sign(req["id"], at, req["body"])
    return {"headers": {"svix-id": req["id"], "svix-timestamp": str(req["timestamp"]),
                        "svix-signature": signature}}


def postmark(req):
    credentials = base64.b64encode(f'{req["user"]}:{req["password"]}'.encode()).decode()
    return {"headers": {"Authorization": "Basic " + credentials}}


OPS = {"sendgrid-key": sendgrid_key, "sendgrid": sendgrid, "mailgun": mailgun,
       "resend": resend, "postmark": postmark}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(OPS[request["op"]](request), sys.stdout)
