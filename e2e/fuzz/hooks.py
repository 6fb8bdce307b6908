"""Schemathesis hooks for e2e/tests/fuzz.rs: generated requests stay on loopback.

Every string that could name a host is rewritten before it is sent, in every phase (examples,
coverage, fuzzing, stateful): `upload_url` and `webhook_url` (when they are non-empty strings)
become the test's own bucket and receiver, and any other `://` loses a slash, so that no
generated document, URL or font reaches beyond this machine. Values of other types are left as
generated, so that type errors are still fuzzed.
"""

import os

import schemathesis

UPLOAD_URL = os.environ["TAILPDF_FUZZ_UPLOAD_URL"]
WEBHOOK_URL = os.environ["TAILPDF_FUZZ_WEBHOOK_URL"]


def _local(value, key=None):
    if isinstance(value, dict):
        return {k: _local(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_local(v) for v in value]
    if isinstance(value, str):
        if key == "upload_url" and value:
            return UPLOAD_URL
        if key == "webhook_url" and value:
            return WEBHOOK_URL
        return value.replace("://", ":/")
    return value


@schemathesis.hook
def map_case(context, case):
    case.body = _local(case.body)
    return case


@schemathesis.hook
def before_add_examples(context, examples):
    for case in examples:
        case.body = _local(case.body)


@schemathesis.hook
def map_body(context, body):
    return _local(body)
