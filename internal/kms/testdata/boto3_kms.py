#!/usr/bin/env python3
"""boto3 against Coffer's KMS (run by TestBoto3).

Environment: KMS_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (an
administrator), USER_KEY_ID / USER_SECRET / USER_ARN (a user with no KMS
permission), AWS_DEFAULT_REGION. Prints "boto3: ok" and exits 0 on success.
"""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

url = os.environ["KMS_URL"]
cfg = Config(retries={"max_attempts": 1})
admin = boto3.client("kms", endpoint_url=url, config=cfg)
user = boto3.client(
    "kms",
    endpoint_url=url,
    config=cfg,
    aws_access_key_id=os.environ["USER_KEY_ID"],
    aws_secret_access_key=os.environ["USER_SECRET"],
)


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        if got != code:
            sys.exit(f"{fn.__name__}: got {got}, want {code}: {e}")
        return e
    sys.exit(f"{fn.__name__}: succeeded, want {code}")


key = admin.create_key(Description="boto3", Tags=[{"TagKey": "k", "TagValue": "v"}])["KeyMetadata"]
assert key["KeyState"] == "Enabled" and key["KeyManager"] == "CUSTOMER", key
key_id, key_arn = key["KeyId"], key["Arn"]
admin.create_alias(AliasName="alias/boto3", TargetKeyId=key_id)
assert admin.describe_key(KeyId="alias/boto3")["KeyMetadata"]["KeyId"] == key_id

ec = {"aws:ecr:arn": "arn:aws:ecr:us-east-1:123456789012:repository/boto3"}
blob = admin.encrypt(KeyId="alias/boto3", Plaintext=b"boto3 secret", EncryptionContext=ec)["CiphertextBlob"]
out = admin.decrypt(CiphertextBlob=blob, EncryptionContext=ec)
assert out["Plaintext"] == b"boto3 secret" and out["KeyId"] == key_arn, out
expect_error("InvalidCiphertextException", admin.decrypt, CiphertextBlob=blob)
expect_error("InvalidCiphertextException", admin.decrypt, CiphertextBlob=blob, EncryptionContext={**ec, "x": "y"})

# A user denied by the key policy, then allowed through a grant.
e = expect_error("AccessDeniedException", user.decrypt, CiphertextBlob=blob, EncryptionContext=ec)
assert key_arn in str(e) and "kms:Decrypt" in str(e), e
user_arn = os.environ["USER_ARN"]
grant = admin.create_grant(KeyId=key_id, GranteePrincipal=user_arn, Operations=["Decrypt"],
                           Constraints={"EncryptionContextSubset": ec})
assert user.decrypt(CiphertextBlob=blob, EncryptionContext=ec, GrantTokens=[grant["GrantToken"]])["Plaintext"] == b"boto3 secret"
grants = admin.list_grants(KeyId=key_id)["Grants"]
assert [g["GrantId"] for g in grants] == [grant["GrantId"]], grants
assert grants[0]["Constraints"]["EncryptionContextSubset"] == ec, grants
admin.revoke_grant(KeyId=key_id, GrantId=grant["GrantId"])
expect_error("AccessDeniedException", user.decrypt, CiphertextBlob=blob, EncryptionContext=ec)

dk = admin.generate_data_key(KeyId=key_arn, KeySpec="AES_256", EncryptionContext=ec)
assert len(dk["Plaintext"]) == 32
assert admin.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ec)["Plaintext"] == dk["Plaintext"]

admin.rotate_key_on_demand(KeyId=key_id)
assert admin.decrypt(CiphertextBlob=blob, EncryptionContext=ec)["Plaintext"] == b"boto3 secret"
assert len(admin.list_key_rotations(KeyId=key_id)["Rotations"]) == 1

admin.disable_key(KeyId=key_id)
expect_error("DisabledException", admin.encrypt, KeyId=key_id, Plaintext=b"x")
admin.enable_key(KeyId=key_id)
sched = admin.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
assert sched["KeyState"] == "PendingDeletion", sched
expect_error("KMSInvalidStateException", admin.encrypt, KeyId=key_id, Plaintext=b"x")
admin.cancel_key_deletion(KeyId=key_id)
expect_error("UnsupportedOperationException", admin.sign, KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
expect_error("NotFoundException", admin.describe_key, KeyId="alias/none")
paginator = admin.get_paginator("list_keys")
assert sum(len(p["Keys"]) for p in paginator.paginate(PaginationConfig={"PageSize": 1})) == 1
print("boto3: ok")
