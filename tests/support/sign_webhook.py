#!/usr/bin/env python3
"""Signs test webhooks the way each provider does, with code that is not postrunner's:
the svix library (Resend), Python's cryptography (SendGrid's ECDSA P-256) and hmac
(Mailgun). Reads one JSON request on stdin, prints one JSON answer on stdout.

  {"op": "sendgrid-key"}                              -> {"private_pem", "public_b64"}
  {"op": "sendgrid", "private_pem", "timestamp", "body"} -> {"headers"}
  {"op": "mailgun", "key", "timestamp", "token", "event_data"} -> {"body"}
  {"op": "resend", "secret", "id", "timestamp", "body"}   -> {"headers"}
  {"op": "postmark", "user", "password"}                  -> {"headers"}
  {"op": "sns-key"}                                       -> {"private_pem", "cert_pem"}
  {"op": "sns", "private_pem", "version", "envelope"}     -> {"body"} (the envelope, signed)
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


def sns_key(_):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return {"private_pem": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode()}


def sns(req):
    """Signs an SNS envelope as AWS documents: the fields in this order, each as
    'Key\nValue\n', absent ones skipped; RSA PKCS#1 v1.5 with SHA-1 (version 1) or
    SHA-256 (version 2)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    envelope = dict(req["envelope"])
    if envelope["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{k}\n{envelope[k]}\n" for k in keys if k in envelope)
    key = serialization.load_pem_private_key(req["private_pem"].encode(), password=None)
    digest = hashes.SHA1() if str(req["version"]) == "1" else hashes.SHA256()
    envelope["SignatureVersion"] = str(req["version"])
    envelope["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    return {"body": json.dumps(envelope)}


OPS = {"sns-key": sns_key, "sns": sns, "sendgrid-key": sendgrid_key, "sendgrid": sendgrid, "mailgun": mailgun,
       "resend": resend, "postmark": postmark}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(OPS[request["op"]](request), sys.stdout)
