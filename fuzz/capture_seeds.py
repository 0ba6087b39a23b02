#!/usr/bin/env python3
"""Captures real printer answers and collects real examples as fuzz seeds (run from the
repository root: `python3 fuzz/capture_seeds.py`; `--examples` writes only the examples):

- fuzz/seeds/zebra/: what `sealprint-printer-sim` answers to ~HI, ~HS, getvar and ~HQES in
  each of its modes (build it first: `cargo build -p sealprint-testkit --bin
  sealprint-printer-sim`); each seed is the parser-selecting byte, then the answer;
- fuzz/seeds/ipp/: what `ippeveprinter` (CUPS) answers to the agent's Get-Printer-Attributes
  (the attributes the agent asks), to a Print-Job of a small ZPL label, and to a request for
  a printer that does not exist; the request bytes are laid out as the agent's encoder
  (agent/src/printer/ipp.rs) lays them out.
- every other new target: examples from this repository (deploy/ configs, the URIs and
  device ids of the agent's tests) and from the SP-API models in shared/spapi-models
  (sandbox and documentation examples, cut to a few KB), prefixed with the selector byte
  the target reads first where it has one.

ippeveprinter needs dbus and avahi-daemon running (as `tests/src/cups.rs` explains). Only
loopback is used; every process started is stopped by its pid.
"""

import base64
import gzip
import hashlib
import hmac
import json
import os
import zlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
SIM = os.path.join(ROOT, "target", "debug", "sealprint-printer-sim")
SERIAL = "XXZEJ1234567"
QUERIES = [
    ("hi", 0, b"~HI"),
    ("hs", 1, b"~HS"),
    ("getvar", 2, b'! U1 getvar "device.unique_id"\r\n'),
    ("hqes", 3, b"~HQES"),
]
MODES = ["normal", "paper-out", "head-open", "paused", "impostor", "silent-when-faulted"]
VERIFY_ATTRIBUTES = [
    "printer-make-and-model",
    "printer-device-id",
    "printer-uuid",
    "printer-serial-number",
    "document-format-supported",
    "printer-state",
    "printer-state-reasons",
    "printer-is-accepting-jobs",
    "device-uri",
]


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ask(sock, query):
    sock.sendall(query)
    sock.settimeout(0.5)
    out = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    return out


def zebra():
    for mode in MODES:
        sim = subprocess.Popen(
            [SIM, "--serial", SERIAL, "--mode", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            line = sim.stdout.readline().decode()
            host, port = line.strip().rsplit(" ", 1)[1].rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=5) as s:
                for name, index, query in QUERIES:
                    answer = ask(s, query)
                    if answer:
                        # Selector: the parser, and a split point about half way.
                        write("zebra", f"{name}-{mode}", bytes([index | (32 << 2)]) + answer)
        finally:
            sim.stdin.close()
            sim.terminate()
            sim.wait(timeout=10)


def attribute(tag, name, value):
    return struct.pack(">BH", tag, len(name)) + name + struct.pack(">H", len(value)) + value


def request(op, request_id, uri, extra=b""):
    body = struct.pack(">BBHI", 2, 0, op, request_id) + b"\x01"
    body += attribute(0x47, b"attributes-charset", b"utf-8")
    body += attribute(0x48, b"attributes-natural-language", b"en")
    body += attribute(0x45, b"printer-uri", uri.encode())
    return body + extra


def post(port, path, data):
    req = urllib.request.Request(
        f"http://localhost:{port}{path}",
        data=data,
        headers={"Content-Type": "application/ipp"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ipp():
    spool = tempfile.mkdtemp(prefix="sealprint-seeds-")
    port = free_port()
    printer = subprocess.Popen(
        ["ippeveprinter", "-p", str(port), "-n", "localhost", "-r", "off", "-d", spool,
         "-c", "/bin/true", "-M", "Zebra", "-m", "ZD421",
         "-f", "application/vnd.zebra-zpl,application/pdf", "fuzz-seed"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        uri = f"ipp://localhost:{port}/ipp/print"
        for _ in range(100):
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        wanted = b""
        for i, name in enumerate(VERIFY_ATTRIBUTES):
            wanted += attribute(0x44, b"requested-attributes" if i == 0 else b"", name.encode())
        get = request(0x000B, 1, uri, wanted + b"\x03")
        write("ipp", "get-printer-attributes-request", get)
        write("ipp", "ippeveprinter-attributes", post(port, "/ipp/print", get))
        job = request(
            0x0002, 2, uri,
            attribute(0x42, b"requesting-user-name", b"sealprint")
            + attribute(0x42, b"job-name", b"job-1")
            + attribute(0x49, b"document-format", b"application/vnd.zebra-zpl")
            + b"\x03",
        )
        label = b"^XA^FO50,50^ADN,36,20^FDSEED^FS^XZ"
        write("ipp", "ippeveprinter-print-job", post(port, "/ipp/print", job + label))
        missing = request(0x000B, 3, f"ipp://localhost:{port}/ipp/nothing", b"\x03")
        write("ipp", "ippeveprinter-not-found", post(port, "/ipp/print", missing))
    finally:
        printer.terminate()
        printer.wait(timeout=10)
        shutil.rmtree(spool, ignore_errors=True)


def png(width, height, color_type, depth, rows):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\0" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def spapi_examples():
    """Small SP-API answers from the models' examples: (name, selector, JSON)."""
    models = os.environ.get("SPAPI_MODELS", os.path.join(os.path.dirname(ROOT), "shared", "spapi-models"))
    if not os.path.isdir(models):
        models = "/work/shared/spapi-models"
    mfn = json.load(open(os.path.join(models, "merchantFulfillmentV0.json")))
    v2 = json.load(open(os.path.join(models, "shippingV2.json")))
    tokens = json.load(open(os.path.join(models, "tokens_2021-03-01.json")))
    out = []
    for path, method, name in [("/mfn/v0/shipments/{shipmentId}", "get", "mfn-get-shipment"),
                               ("/mfn/v0/shipments", "post", "mfn-create-shipment"),
                               ("/mfn/v0/shipments/{shipmentId}", "delete", "mfn-cancel")]:
        sandbox = mfn["paths"][path][method]["responses"]["200"]["x-amzn-api-sandbox"]
        out.append((name, 0, sandbox["static"][0]["response"]))
    err = mfn["paths"]["/mfn/v0/shipments"]["post"]["responses"]["400"]["x-amzn-api-sandbox"]
    out.append(("mfn-error", 3, err["static"][0]["response"]))
    for path, name, sel in [("/shipping/v2/shipments", "v2-purchase", 1),
                            ("/shipping/v2/oneClickShipment", "v2-one-click", 1),
                            ("/shipping/v2/shipments/{shipmentId}/documents", "v2-documents", 2)]:
        ops = v2["paths"].get(path, {})
        op = ops.get("post") or ops.get("get")
        if op:
            ex = op["responses"]["200"]["examples"]["application/json"]
            out.append((name, sel, {"payload": ex}))
    ex = v2["paths"]["/shipping/v2/shipments"]["post"]["responses"]["400"]["examples"]
    out.append(("v2-error", 3, ex["application/json"]))
    rdt = tokens["paths"]["/tokens/2021-03-01/restrictedDataToken"]["post"]["responses"]["200"]
    out.append(("rdt", 5, rdt["x-amzn-api-sandbox"]["static"][0]["response"]))
    out.append(("lwa", 4, {"access_token": "Atza|IQEBLjAsAhRmHjNgHpi0U", "token_type": "bearer",
                           "expires_in": 3600, "refresh_token": "Atzr|IQEBLzAtAhRPpMJxdwVz2Nn6f2y"}))
    return out


def cut_contents(o):
    """Long base64 contents cut to a padded 64 characters, so seeds stay small."""
    if isinstance(o, dict):
        return {k: (v[:64] if k.lower() in ("contents",) and isinstance(v, str) else cut_contents(v))
                for k, v in o.items()}
    if isinstance(o, list):
        return [cut_contents(v) for v in o]
    return o


def examples():
    zpl = b"^XA^FO50,50^ADN,36,20^FDSEALPRINT TEST^FS^XZ"
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    gray = png(10, 2, 0, 8, [bytes([0] + [255] * 8 + [0]), bytes([255] * 10)])
    write("png_zpl", "gray-10x2", gray)
    write("png_zpl", "rgba-2x2", png(2, 2, 6, 8, [bytes([0, 0, 0, 255, 0, 0, 0, 0])] * 2))
    write("png_zpl", "rgb-3x1", png(3, 1, 2, 8, [bytes([0, 0, 0, 128, 128, 128, 255, 255, 255])]))
    write("png_zpl", "gray16-2x1", png(2, 1, 0, 16, [bytes([0, 0, 255, 255])]))
    write("png_zpl", "bits-8x2", png(8, 2, 0, 1, [b"\xaa", b"\x55"]))
    write("png_zpl", "graya-1x1", png(1, 1, 4, 8, [b"\x00\xff"]))
    # Direct printer seeds for the IPP judgement: a CUPS queue answer with a device-uri.
    attrs = open(os.path.join(SEEDS, "ipp", "ippeveprinter-attributes"), "rb").read()
    for name, uri in [("cups-queue-socket", b"socket://10.0.0.5:9100"),
                      ("cups-queue-usb", b"usb://Zebra/ZD421?serial=D4J222603053"),
                      ("cups-queue-pdf", b"cups-pdf:/")]:
        write("ipp", name, attrs[:-1] + attribute(0x45, b"device-uri", uri) + b"\x03")
    for name, uri in [("raw", "raw://10.0.0.5:9100"), ("raw-v6", "raw://[fe80::1]"),
                      ("raw-host", "RAW://printer-1.lan:6101/"),
                      ("ipp", "ipp://printer.local/ipp/print"),
                      ("ipps", "ipps://[::1]:8443/ipp/print"), ("cups", "cups://Zebra_ZD421"),
                      ("usb", "usb:///dev/usb/lp0"), ("winspool", "winspool://Zebra ZD421"),
                      ("flag", "zebra-1=raw://10.0.0.5:9100"), ("cups-server", "localhost:631")]:
        write("printer_uri", name, uri.encode())
    for name, sel, text in [
            ("zebra-id", 0, "MFG:Zebra Technologies;CMD:ZPL;MDL:ZD421;CLS:PRINTER;SN:D4J222603053;"),
            ("ippeve-id", 0, "MFG:Zebra;MDL:ZD421;CMD:PDF;"),
            ("pdf-writer-id", 0, "MFG:Microsoft;MDL:Print To PDF;CLS:PRINTER;SN:X1;"),
            ("socket-uri", 1, "socket://10.0.0.5:9100"),
            ("ipp-uri", 1, "ipp://admin:secret@10.0.0.7/ipp/print"),
            ("usb-uri", 1, "usb://Zebra%20Technologies/ZTC%20ZD421-203dpi?serial=D4J222603053"),
            ("lpd-uri", 1, "lpd://10.0.0.8/queue"),
            ("file-uri", 1, "file:///dev/null"),
            ("password", 2, "ipp\nadmin\npa@ss\n10.0.0.7:631/ipp/print")]:
        write("device_id", name, bytes([sel]) + text.encode())
    for name, path in [("example", "deploy/examples/agent.toml"), ("compose-1", "deploy/compose/agent-1.toml"),
                       ("compose-2", "deploy/compose/agent-2.toml")]:
        write("agent_config", name, open(os.path.join(ROOT, path), "rb").read())
    for name, path in [("example", "deploy/examples/coordinator.toml"),
                       ("compose", "deploy/compose/coordinator.toml")]:
        write("coordinator_config", name, open(os.path.join(ROOT, path), "rb").read())
    b64 = lambda b: base64.b64encode(b).decode()
    md5 = lambda b: base64.b64encode(hashlib.md5(b).digest()).decode()
    gz = gzip.compress(zpl, mtime=0)
    write("spapi_label", "raw-mfn-gzip", f"{b64(gz)}\napplication/zpl\n{md5(gz)}".encode())
    write("spapi_label", "raw-v2-pdf", f"{b64(pdf)}\nPDF\n".encode())
    write("spapi_label", "raw-unpadded", b"H4sIAAAAAAAAAO29B2AcSZYlJi9tynt\nZPL203\n")
    # Built mode: bit 0 set, bit 1 gzip, bits 2-3 checksum, bits 4-7 declared type.
    write("spapi_label", "built-zpl-gzip-received", bytes([1 | 2 | 4 | (6 << 4)]) + zpl)
    write("spapi_label", "built-zpl-gzip-decompressed", bytes([1 | 2 | 8 | (5 << 4)]) + zpl)
    write("spapi_label", "built-pdf", bytes([1 | (2 << 4)]) + pdf)
    write("spapi_label", "built-png", bytes([1 | 4 | (3 << 4)]) + gray)
    for name, sel, answer in spapi_examples():
        write("spapi_json", name, bytes([sel]) + json.dumps(cut_contents(answer)).encode()[:4096])
    bodies = {
        "login": {"email": "ops@example.com", "password": "correct horse battery staple"},
        "change_password": {"email": "ops@example.com", "old_password": "a" * 12, "new_password": "b" * 16},
        "name": {"name": "Warehouse 1"},
        "enrollment_token": {"ttl_secs": 3600},
        "label_upload": {"printer": "zebra-1", "format": "zpl", "content_base64": b64(zpl),
                         "order_id": "903-5563053-5647845", "carrier": "UPS", "tracking": "1Z999"},
        "label_spapi_source": {"source": "mfn", "connection": "conn-1",
                               "shipment_request": {"AmazonOrderId": "903-5563053-5647845"},
                               "shipping_service_id": "UPS_PTP_GND", "pool": "outbound"},
        "new_user": {"email": "packer@example.com", "roles": ["operator"]},
        "user_patch": {"roles": ["operator"], "disabled": False},
        "subscription": {"state": "active"},
        "attestation": {"security_contact": "security@example.com"},
        "terms": {"version": "2026-01"},
        "suspend": {"reason": "billing"},
        "canaries": {"order_ids": ["903-5563053-5647845"]},
        "new_api_key": {"name": "wms", "roles": ["operator"], "expires_in_days": 90},
        "ip_allowlist": {"cidrs": ["10.0.0.0/8", "2001:db8::/32"]},
        "deletion": {"confirm": "tnt-1"},
        "webhook": {"url": "https://hooks.example.com/sealprint"},
        "new_spapi_connection": {"name": "EU", "region": "eu", "refresh_token": "Atzr|x",
                                 "client_id": "amzn1.application-oa2-client.x", "client_secret": "s"},
        "eligible_services": {"shipment_request": {"AmazonOrderId": "903-5563053-5647845"}},
        "additional_seller_inputs": {"shipping_service_id": "UPS_PTP_GND", "order_id": "903-5563053-5647845",
                                     "ship_from_address": {"Name": "Dock"}},
        "additional_inputs": {"request_token": "6DCCEDD3FF961C15FEB94F342D41C", "rate_id": "F4B68849F969E239FF9FCA9C12E35"},
        "cancel_shipment": {"api": "mfn", "shipment_id": "be7a0a53-00c3-4f6f-a63a-639f76ee9253"},
    }
    for i, (name, body) in enumerate(bodies.items()):
        write("api_body", name, bytes([i]) + json.dumps(body).encode())
    one_click = {"source": "shipping_v2_one_click", "connection": "conn-1",
                 "channelDetails": {"channelType": "AMAZON",
                                    "amazonOrderDetails": {"orderId": "903-5563053-5647845"}}}
    write("api_body", "label_one_click", bytes([5]) + json.dumps(one_click).encode())
    event = json.dumps({"type": "customer.subscription.updated", "created": 1700000000,
                        "data": {"object": {"status": "active", "metadata": {"tenant_id": "tnt-1"}}}}).encode()
    mac = hmac.new(b"whsec_fuzz", b"1700000000." + event, hashlib.sha256).hexdigest()
    write("billing", "signed-event", f"t=1700000000,v1={mac}".encode() + b"\n" + event)
    write("billing", "two-signatures", f"t=1700000000,v0=abc,v1={'0' * 64},v1={mac}".encode() + b"\n" + event)
    write("billing", "deleted", b"t=1,v1=00\n" + json.dumps(
        {"type": "customer.subscription.deleted", "data": {"object": {"metadata": {"tenant_id": "tnt-2"}}}}).encode())
    for name, cidr in [("v4", "10.0.0.0/8"), ("host", "192.168.1.7"), ("v6", "2001:db8::/32"),
                       ("mapped", "::ffff:10.0.0.1"), ("all", "0.0.0.0/0"), ("v6-host", "fe80::1/128")]:
        write("cidr", name, cidr.encode())


if __name__ == "__main__":
    if "--examples" in sys.argv:
        examples()
        sys.exit(0)
    if not os.path.exists(SIM):
        sys.exit(f"{SIM} is missing: cargo build -p sealprint-testkit --bin sealprint-printer-sim")
    zebra()
    ipp()
    examples()
