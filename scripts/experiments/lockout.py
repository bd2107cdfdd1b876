"""Connections that never finish a request against a release `cvtk serve`:
80 that send one byte `P` (a prefix of the HTTP/2 preface), then 80 that send
the preface and an empty SETTINGS frame, against --max-connections 64
--header-timeout-s 2; an honest request while they are open, and how many are
closed within 15 s. Loopback only. docs/deployment.md ("Limits and
hardening") describes the limits it exercises.

    python3 scripts/experiments/lockout.py target/release/cvtk MODEL_DIR
"""
import asyncio, json, os, subprocess, sys, tempfile, time, urllib.request

exe, model = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp()
key = "lockout-check-key-0123456789"
open(f"{work}/key", "w").write(key)
srv = subprocess.Popen([exe, "serve", "--model", model, "--key-file", f"{work}/key", "--port", "0",
                        "--device", "cpu", "--max-connections", "64", "--header-timeout-s", "2",
                        "--addr-file", f"{work}/addr"], stderr=subprocess.DEVNULL)
try:
    for _ in range(600):
        try:
            url = open(f"{work}/addr").read().strip()
            if urllib.request.urlopen(url + "/ready", timeout=2).status == 200:
                break
        except Exception:
            time.sleep(0.1)
    host, port = url.removeprefix("http://").split(":")

    async def stalled(data):
        r, w = await asyncio.open_connection(host, int(port))
        w.write(data); await w.drain()
        return r, w

    async def closed_within(r, t):
        end = time.monotonic() + t
        while True:
            left = end - time.monotonic()
            if left <= 0: return False
            try:
                b = await asyncio.wait_for(r.read(1024), left)
            except (asyncio.TimeoutError,):
                return False
            except Exception:
                return True
            if not b: return True

    def honest():
        req = urllib.request.Request(url + "/health")
        t = time.monotonic()
        try:
            s = urllib.request.urlopen(req, timeout=10).status
        except Exception as e:
            s = repr(e)
        return s, time.monotonic() - t

    async def attack(name, data):
        conns = [await stalled(data) for _ in range(80)]
        await asyncio.sleep(0.3)
        start = time.monotonic()
        status, took = await asyncio.to_thread(honest)
        closed = await asyncio.gather(*[closed_within(r, 15) for r, _ in conns])
        print(f"{name}: honest request while open -> {status} in {took*1000:.0f} ms; "
              f"{sum(closed)} of 80 closed within 15 s (all done {time.monotonic()-start:.1f} s after the honest request)")
        for _, w in conns: w.close()

    async def main():
        await attack("80 x one byte 'P'", b"P")
        await attack("80 x HTTP/2 preface + empty SETTINGS", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    asyncio.run(main())
finally:
    srv.kill()
