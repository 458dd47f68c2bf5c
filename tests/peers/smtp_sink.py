"""A real SMTP server for snbox's tests (aiosmtpd): STARTTLS with a given certificate, AUTH
with one user, and every accepted message written to a folder, one file per recipient.

    python smtp_sink.py --port P --dir D [--cert C --key K] [--auth USER:PASSWORD] [--refuse]

--refuse answers every RCPT with 550 (a permanent refusal). Prints READY once listening.
Each message is written atomically (a temporary name, then renamed) as
`<n>.eml`, preceded by an `X-Sink-Rcpt:` line naming its recipient.
"""

import argparse
import itertools
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

counter = itertools.count(1)


class Sink:
    def __init__(self, folder, refuse):
        self.folder = folder
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 mailbox unavailable (the test sink refuses)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            n = next(counter)
            tmp = os.path.join(self.folder, f".{n}.tmp")
            with open(tmp, "wb") as f:
                f.write(f"X-Sink-Rcpt: {rcpt}\r\n".encode())
                f.write(envelope.content)
            os.rename(tmp, os.path.join(self.folder, f"{n}.eml"))
        return "250 2.0.0 Ok: stored by the test sink"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    p.add_argument("--refuse", action="store_true")
    a = p.parse_args()
    kwargs = {}
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
        kwargs["tls_context"] = context
        kwargs["require_starttls"] = True
    if a.auth:
        user, password = a.auth.split(":", 1)
        kwargs["authenticator"] = authenticator(user, password)
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = bool(a.cert)
    controller = Controller(Sink(a.dir, a.refuse), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        # Bounded: a sink never outlives its test by long.
        time.sleep(600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
