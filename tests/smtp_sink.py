#!/usr/bin/python3
"""An SMTP server for docgate's tests (aiosmtpd), listening on 127.0.0.1 only.

Usage: /usr/bin/python3 smtp_sink.py PORT DIR

Each accepted message is written to DIR/mail/<name>.eml, complete (written to a hidden file,
then renamed), before the server answers 250 to the end of DATA.

DIR/control, read at every RCPT TO and every end of DATA, may hold lines that change the answers:

    rcpt 550 5.1.1 No such user      answer RCPT TO with this reply
    data 451 4.3.0 Try again later   answer the end of DATA with this reply
    delay 1.5                        wait this many seconds before answering RCPT TO

Every answer is appended to DIR/events as one line: "rcpt-wait", "rcpt 250", "data 451", ...

The process runs until killed.
"""

import asyncio
import itertools
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, root):
        self.root = root
        self.mail = os.path.join(root, "mail")
        self.counter = itertools.count()

    def rules(self):
        try:
            with open(os.path.join(self.root, "control"), encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        rules = {}
        for line in text.splitlines():
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                rules[parts[0]] = parts[1]
        return rules

    def event(self, text):
        with open(os.path.join(self.root, "events"), "a", encoding="utf-8") as f:
            f.write(text + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rules = self.rules()
        if "delay" in rules:
            self.event("rcpt-wait")
            await asyncio.sleep(float(rules["delay"]))
        if "rcpt" in rules:
            self.event("rcpt " + rules["rcpt"][:3])
            return rules["rcpt"]
        envelope.rcpt_tos.append(address)
        self.event("rcpt 250")
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rules = self.rules()
        if "data" in rules:
            self.event("data " + rules["data"][:3])
            return rules["data"]
        name = "%d-%d-%d" % (time.time_ns(), os.getpid(), next(self.counter))
        partial = os.path.join(self.mail, "." + name)
        with open(partial, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(partial, os.path.join(self.mail, name + ".eml"))
        self.event("data 250")
        return "250 Message accepted for delivery"


def main():
    port = int(sys.argv[1])
    root = sys.argv[2]
    os.makedirs(os.path.join(root, "mail"), exist_ok=True)
    controller = Controller(Sink(root), hostname="127.0.0.1", port=port)
    controller.start()  # raises (and the process exits non-zero) if the port is taken
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
