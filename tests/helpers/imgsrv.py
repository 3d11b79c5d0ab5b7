#!/usr/bin/env python3
"""Speaks (or fakes) capsa's image server protocol, for tests/e2e/test_imageserver.sh.

Written from the protocol as src/runtime/imageserver.h describes it (one
SOCK_SEQPACKET message: "CAPSAIMG", version, op, flags, reserved, offset,
size; descriptors attached), not from capsa's code.

  imgsrv.py stats SOCKET                    print the server's counters
  imgsrv.py serve SOCKET IMAGE OFF SIZE [KEYFILE | --passphrase WORD]
                                            ask it to serve an (unmounted)
                                            /dev/fuse descriptor from IMAGE,
                                            with KEYFILE's bytes on a pipe as
                                            the key record, or a secret record
                                            (crypt.h) of a LUKS2 passphrase;
                                            print its answer
  imgsrv.py garbage SOCKET                  send a request with a wrong magic
  imgsrv.py listen SOCKET LOG               a fake server: log every
                                            connection (and what it brought)
                                            to LOG, until killed

The answer is printed as one word: the answer byte, "closed" when the
server closed the connection without one, or "refused: ERRNO" when the
connection itself failed.
"""
import os
import socket
import struct
import sys

MAGIC = b"CAPSAIMG"
SERVE, STATS = 1, 2
ENCRYPTED = 1


def request(op, flags=0, offset=0, size=0, magic=MAGIC):
    return struct.pack("<8sIIIIQQ", magic, 1, op, flags, 0, offset, size)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    try:
        s.connect(path)
    except OSError as e:
        print("refused:", e.errno)
        sys.exit(0)
    return s


def send(s, f):
    """The server may hang up before reading (a client it does not hear)."""
    try:
        f()
    except OSError:
        print("closed")
        sys.exit(0)


def answer(s, raw=False):
    try:
        b = s.recv(4096)
    except OSError:
        b = b""
    if not b:
        print("closed")
    elif raw:
        sys.stdout.write(b.decode("ascii", "replace"))
    else:
        # The answer byte and its text (runtime/imageserver.h), one line.
        print(b.decode("ascii", "replace").rstrip("\n").replace("\n", " | "))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "listen":
        log = open(sys.argv[3], "a", buffering=1)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.bind(path)
        s.listen(16)
        while True:
            c, _ = s.accept()
            c.settimeout(2)
            try:
                data, fds, _, _ = socket.recv_fds(c, 4096, 4)
            except OSError:
                data, fds = b"", []
            log.write("connection: %d bytes, %d descriptors\n" % (len(data), len(fds)))
            for fd in fds:
                os.close(fd)
            c.close()
    s = connect(path)
    if cmd == "stats":
        send(s, lambda: s.send(request(STATS)))
        answer(s, raw=True)
    elif cmd == "garbage":
        send(s, lambda: s.send(request(SERVE, magic=b"NOTCAPSA")))
        answer(s)
    elif cmd == "serve":
        image, off, size = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        fuse = os.open("/dev/fuse", os.O_RDWR)
        img = os.open(image, os.O_RDONLY)
        fds = [fuse, img]
        flags = 0
        if len(sys.argv) > 6:
            r, w = os.pipe()
            if sys.argv[6] == "--passphrase":
                word = sys.argv[7].encode()
                src = b"CAPSA_ENCRYPTION_PASSPHRASE"
                os.write(w, b"CAPSASEC" + bytes([1, 1, 1, 0]) + struct.pack("<I", len(src)) + src
                         + struct.pack("<I", 0) + struct.pack("<I", len(word)) + word)
            else:
                with open(sys.argv[6], "rb") as f:
                    os.write(w, f.read())
            os.close(w)
            fds.append(r)
            flags = ENCRYPTED
        send(s, lambda: socket.send_fds(s, [request(SERVE, flags, off, size)], fds))
        answer(s)
    else:
        sys.exit("unknown command " + cmd)


main()
