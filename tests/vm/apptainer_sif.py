#!/usr/bin/env python3
"""Encrypted SIF images laid out as Apptainer lays them out, written and
read without capsa's code (the judge of tests/vm/test_dmcrypt.sh).

Followed from the sources, not copied: the SIF format of apptainer/sif
(pkg/sif: sif.go, create.go, descriptor.go, descriptor_input.go), the
assembler of an encrypted image (apptainer internal/pkg/build/assemblers/
sif.go: definition file, then the partition, fs type 5, primary system,
then for RSA a cryptographic message, format PEM, type RSA-OAEP, linked
to the partition) and its key wrapping (pkg/util/cryptkey/key.go: the
secret is cut into chunks of k - 2*32 - 2 bytes, each encrypted with
RSA-OAEP SHA-256 / MGF1-SHA-256, the ciphertexts concatenated, DER OCTET
STRING, PEM block "MESSAGE"; unwrapping decrypts k-byte chunks).  The RSA
operations are openssl's (pkeyutl).

  apptainer_sif.py create OUT.sif PARTITION [MESSAGE.pem]
  apptainer_sif.py extract IN.sif PARTITION.out [MESSAGE.out]
  apptainer_sif.py wrap PUBLIC.pem SECRET MESSAGE.pem
  apptainer_sif.py unwrap PRIVATE.pem MESSAGE.pem SECRET.out

Errors: one line on stderr, exit status 1.
"""
import base64
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import uuid

HDR = struct.Struct('<32s10s3s3s16sqqqqqqqq')          # 128 bytes
DESC = struct.Struct('<i?IIIqqqqqqq128s384s')           # 585 bytes
DATA_DEFFILE, DATA_PARTITION, DATA_CRYPTOMSG = 0x4001, 0x4004, 0x4008
FS_ENCRYPTED_SQUASHFS, PART_PRIMSYS = 5, 2
FORMAT_PEM, MESSAGE_RSA_OAEP = 2, 0x200
ARCH_AMD64 = b'02\0'
GROUP = 0xf0000000 | 1                                    # default object group 1
DESC_OFFSET, DESC_CAPACITY = 4096, 48
OAEP = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256',
        '-pkeyopt', 'rsa_mgf1_md:sha256']


def die(msg):
    sys.stderr.write('apptainer_sif.py: %s\n' % msg)
    sys.exit(1)


def create(out, part, message=None):
    """Definition file, partition (aligned to 4096), optional crypto message."""
    deffile = b'Bootstrap: scratch\n'
    now = int(time.time())
    objs = [(DATA_DEFFILE, deffile, 0, 0, b'')]
    part_id = len(objs) + 1
    objs.append((DATA_PARTITION, None, 4096, 0,
                 struct.pack('<ii3s', FS_ENCRYPTED_SQUASHFS, PART_PRIMSYS, ARCH_AMD64)))
    if message is not None:
        with open(message, 'rb') as f:
            objs.append((DATA_CRYPTOMSG, f.read(), 0, part_id,
                         struct.pack('<ii', FORMAT_PEM, MESSAGE_RSA_OAEP)))
    data_offset = DESC_OFFSET + DESC_CAPACITY * DESC.size
    descs = []
    tmp = out + '.tmp'
    with open(tmp, 'wb') as f:
        end = data_offset
        for i, (dtype, data, align, link, extra) in enumerate(objs):
            off = end if not align or end % align == 0 else end + align - end % align
            f.seek(off)
            if data is None:
                size = 0
                with open(part, 'rb') as p:
                    while True:
                        b = p.read(1 << 16)
                        if not b:
                            break
                        # LUKS2's 16 MiB header is mostly zeros: keep the file sparse.
                        if any(b):
                            f.write(b)
                        else:
                            f.seek(len(b), os.SEEK_CUR)
                        size += len(b)
            else:
                f.write(data)
                size = len(data)
            descs.append(DESC.pack(dtype, True, i + 1, GROUP, link, off, size, off - end + size,
                                   now, now, 0, 0, b'', extra))
            end = off + size
        descs += [b'\0' * DESC.size] * (DESC_CAPACITY - len(descs))
        f.truncate(end)
        f.seek(DESC_OFFSET)
        f.write(b''.join(descs))
        f.seek(0)
        f.write(HDR.pack(b'#!/usr/bin/env run-singularity\n', b'SIF_MAGIC\0', b'01\0', ARCH_AMD64,
                         uuid.uuid4().bytes, now, now, DESC_CAPACITY - len(objs), DESC_CAPACITY,
                         DESC_OFFSET, DESC_CAPACITY * DESC.size, data_offset, end - data_offset))
    os.rename(tmp, out)


def extract(sif, part_out, msg_out=None):
    """As Apptainer finds them: the primary system partition, and the
    PEM/RSA-OAEP cryptographic message linked to its ID."""
    with open(sif, 'rb') as f:
        h = HDR.unpack(f.read(HDR.size))
        if h[1] != b'SIF_MAGIC\0':
            die('%s: not a SIF file' % sif)
        free, total, doff = h[7], h[8], h[9]
        f.seek(doff)
        descs = [DESC.unpack(f.read(DESC.size)) for _ in range(total)]
        descs = [d for d in descs if d[1]]
        prim = [d for d in descs if d[0] == DATA_PARTITION
                and struct.unpack_from('<ii', d[13])[1] == PART_PRIMSYS]
        if len(prim) != 1:
            die('%s: %d primary system partitions' % (sif, len(prim)))
        p = prim[0]
        fstype, parttype, arch = struct.unpack_from('<ii3s', p[13])
        if fstype != FS_ENCRYPTED_SQUASHFS:
            die('%s: partition fs type %d, not 5 (encrypted squashfs)' % (sif, fstype))
        if arch != ARCH_AMD64:
            die('%s: partition arch %r, not amd64' % (sif, arch))
        f.seek(p[5])
        with open(part_out, 'wb') as o:
            left = p[6]
            while left:
                b = f.read(min(left, 1 << 20))
                if not b:
                    die('%s: partition truncated' % sif)
                o.write(b)
                left -= len(b)
        msgs = [d for d in descs if d[0] == DATA_CRYPTOMSG and d[4] == p[2]
                and struct.unpack_from('<ii', d[13]) == (FORMAT_PEM, MESSAGE_RSA_OAEP)]
        if msg_out is not None:
            if not msgs:
                die('%s: no PEM/RSA-OAEP message linked to partition %d' % (sif, p[2]))
            f.seek(msgs[0][5])
            with open(msg_out, 'wb') as o:
                o.write(f.read(msgs[0][6]))
        print('partition id=%d fstype=%d parttype=%d arch=amd64 size=%d messages=%d'
              % (p[2], fstype, parttype, p[6], len(msgs)))


def key_bytes(pem, public):
    cmd = ['openssl', 'pkey', '-in', pem, '-noout', '-text'] + (['-pubin'] if public else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r'-Key: \((\d+) bit', out.stdout)
    if out.returncode != 0 or not m:
        die('%s: not an RSA key: %s' % (pem, out.stderr.strip()))
    return (int(m.group(1)) + 7) // 8


def der_octet_string(b):
    n = len(b)
    if n < 0x80:
        return b'\x04' + bytes([n]) + b
    ln = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return b'\x04' + bytes([0x80 | len(ln)]) + ln + b


def parse_octet_string(der):
    if len(der) < 2 or der[0] != 0x04:
        die('message: not a DER OCTET STRING')
    n, i = der[1], 2
    if n & 0x80:
        k = n & 0x7f
        n, i = int.from_bytes(der[2:2 + k], 'big'), 2 + k
    if i + n != len(der):
        die('message: bad DER length')
    return der[i:]


def openssl_rsa(op, key, data, public):
    with tempfile.NamedTemporaryFile() as i, tempfile.NamedTemporaryFile() as o:
        i.write(data)
        i.flush()
        cmd = ['openssl', 'pkeyutl', op, '-inkey', key] + (['-pubin'] if public else []) + OAEP + \
              ['-in', i.name, '-out', o.name]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            die('openssl pkeyutl %s: %s' % (op, r.stderr.strip()))
        return open(o.name, 'rb').read()


def wrap(pub, secret_file, out):
    secret = open(secret_file, 'rb').read()
    k = key_bytes(pub, True)
    step = k - 2 * 32 - 2
    ct = b''.join(openssl_rsa('-encrypt', pub, secret[i:i + step], True)
                  for i in range(0, len(secret), step))
    b64 = base64.b64encode(der_octet_string(ct)).decode()
    with open(out, 'w') as f:
        f.write('-----BEGIN MESSAGE-----\n')
        f.write(''.join(b64[i:i + 64] + '\n' for i in range(0, len(b64), 64)))
        f.write('-----END MESSAGE-----\n')


def unwrap(priv, msg_file, out):
    text = open(msg_file).read()
    m = re.search(r'-----BEGIN MESSAGE-----\n(.*?)-----END MESSAGE-----', text, re.S)
    if not m:
        die('%s: no PEM MESSAGE block' % msg_file)
    ct = parse_octet_string(base64.b64decode(m.group(1)))
    k = key_bytes(priv, False)
    if len(ct) % k:
        die('message: %d bytes, not a multiple of the key size %d' % (len(ct), k))
    secret = b''.join(openssl_rsa('-decrypt', priv, ct[i:i + k], False) for i in range(0, len(ct), k))
    with open(out, 'wb') as f:
        f.write(secret)
    print('chunks=%d secret=%d bytes' % (len(ct) // k, len(secret)))


def main():
    a = sys.argv[1:]
    cmds = {'create': (create, 2, 3), 'extract': (extract, 2, 3), 'wrap': (wrap, 3, 3),
            'unwrap': (unwrap, 3, 3)}
    if not a or a[0] not in cmds or not cmds[a[0]][1] <= len(a) - 1 <= cmds[a[0]][2]:
        die('usage: create OUT PART [MSG] | extract SIF PART [MSG] | wrap PUB SECRET MSG | '
            'unwrap PRIV MSG SECRET')
    try:
        cmds[a[0]][0](*a[1:])
    except OSError as e:
        die(str(e))


if __name__ == '__main__':
    main()
