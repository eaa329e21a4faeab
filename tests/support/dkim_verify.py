"""DKIM for the tests, by code independent of postrunner's: makes signing keys (Python
`cryptography` for RSA, PyNaCl for Ed25519) with their DNS records, and verifies a
message's signature with dkimpy, the record given as the DNS answer for
<selector>._domainkey.<domain>.

stdin:  {"op": "keys"}
stdout: {"rsa_pem": "<PKCS#1 PEM>", "rsa_record": "v=DKIM1; k=rsa; p=...",
         "ed25519_seed": "<base64>", "ed25519_record": "v=DKIM1; k=ed25519; p=..."}
stdin:  {"op": "verify", "message": "<raw RFC 5322 text>", "record": "v=DKIM1; ..."}
stdout: {"valid": true|false}
"""

import base64
import json
import sys


def keys(_request):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from nacl.signing import SigningKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()).decode()
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    seed = SigningKey.generate()
    return {
        "rsa_pem": rsa_pem,
        "rsa_record": "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode(),
        "ed25519_seed": base64.b64encode(bytes(seed)).decode(),
        "ed25519_record": "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(seed.verify_key)).decode(),
    }


def verify(request):
    import dkim

    record = request["record"].encode()
    try:
        valid = dkim.verify(request["message"].encode(), dnsfunc=lambda name, timeout=5: record)
    except Exception:  # a key of another type than the signature's: not verified
        valid = False
    return {"valid": bool(valid)}


request = json.load(sys.stdin)
json.dump({"keys": keys, "verify": verify}[request["op"]](request), sys.stdout)
