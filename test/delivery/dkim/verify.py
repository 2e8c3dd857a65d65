"""Verifies the first DKIM-Signature of a message with Debian's python3-dkim, with no DNS.

Usage: verify.py <message file> <record name> <TXT value>
Prints one JSON object: {"ok": bool, "log": [...]}; exit 0 whatever the verdict.
"""
import json
import logging
import sys

import dkim


def main():
    message_file, name, value = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(message_file, 'rb') as f:
        message = f.read()
    asked = []

    def dnsfunc(qname, timeout=5):
        asked.append(qname.decode('ascii', 'replace'))
        if qname.decode('ascii').lower().rstrip('.') == name.lower().rstrip('.'):
            return value.encode('ascii')
        return None

    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger('dkim-verify')
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Collect())
    try:
        ok = dkim.verify(message, logger=logger, dnsfunc=dnsfunc)
    except Exception as error:  # a verifier error is a failed verification, with its reason
        ok = False
        lines.append('%s: %s' % (type(error).__name__, error))
    print(json.dumps({'ok': bool(ok), 'asked': asked, 'log': lines}))


main()
