#!/usr/bin/env bash
# The coordinator's status page in a real browser: headless Chromium (Debian's chromium
# package) loads http://127.0.0.1:PORT/ from a running DP demo federation (three hospitals,
# secure aggregation, DP-SGD) that ran a few rounds and was paused. The test checks the DOM
# Chromium rendered (sites and their state, the paused banner, the accuracy, loss and epsilon
# plots with one line per site) and the screenshot (a PNG of the requested size that is not
# blank). The screenshot is kept as $COHORT_STATUS_SCREENSHOT when that is set (docs/).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/paused_demo_lib.sh"

CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
  # Not a skip: scripts/setup.sh installs it, so its absence is a broken setup.
  echo "FAIL: chromium is not installed (scripts/setup.sh installs the chromium package)" >&2
  exit 1
fi

check "the demo ran 4 rounds and paused" start_paused_demo 4 "status page test"

# Headless Chromium as root needs --no-sandbox; its profile lives in the test's directory.
browse() {
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --hide-scrollbars --user-data-dir="$WORK/chromium-profile" --window-size=1280,1500 "$@" \
    "http://127.0.0.1:$HTTP/" 2>>"$WORK/chromium.log"
}
browse --dump-dom >"$WORK/dom.html"
browse --screenshot="$WORK/status.png" >/dev/null
check "Chromium rendered the page and the DOM has what the page must show" \
  "$PY" - "$WORK/dom.html" "$WORK/status.json" <<'PY'
import json, re, sys
dom = open(sys.argv[1]).read()
status = json.load(open(sys.argv[2]))
assert "<h1>Federation demo</h1>" in dom, dom[:500]
assert "<b>Paused</b>" in dom and "status page test" in dom
for site in ("hospital-a", "hospital-b", "hospital-c"):
    assert site in dom, site
assert "3 of 3 connected" in dom
assert dom.count('<svg class="chart"') == 3
assert 'data-series="test accuracy"' in dom
assert 'data-series="train loss"' in dom and 'data-series="test loss"' in dom
for site in ("hospital-a", "hospital-b", "hospital-c"):  # one epsilon line per site
    assert f'data-series="{site}"' in dom, site
# Each epsilon shown in the sites table matches the Admin API to the digits printed.
for s in status["sites"]:
    assert f'{s["epsilon"]:.3f}' in dom, (s["site_id"], s["epsilon"])
rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>committed</td>", dom)
assert len(rows) >= 4, rows
PY
check "the screenshot is a non-blank 1280x1500 PNG" "$PY" - "$WORK/status.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
assert (width, height) == (1280, 1500), (width, height)
assert depth == 8 and colour in (2, 6), (depth, colour)
# Decode the image data (filters per row) and count distinct colours.
idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]]
                for i in range(8, len(data)) if data[i + 4:i + 8] == b"IDAT")
raw = zlib.decompress(idat)
bpp = 3 if colour == 2 else 4
stride = width * bpp
prev = bytearray(stride)
colours = set()
pos = 0
for y in range(height):
    kind = raw[pos]; row = bytearray(raw[pos + 1:pos + 1 + stride]); pos += 1 + stride
    for x in range(stride):
        a = row[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if kind == 1: row[x] = (row[x] + a) & 255
        elif kind == 2: row[x] = (row[x] + b) & 255
        elif kind == 3: row[x] = (row[x] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:
        for x in range(0, stride, bpp * 2):
            colours.add(bytes(row[x:x + 3]))
    prev = row
assert len(colours) > 50, f"only {len(colours)} colours: blank page?"
print(f"screenshot {width}x{height}, {len(colours)} colours sampled")
PY
if [ -n "${COHORT_STATUS_SCREENSHOT:-}" ]; then cp "$WORK/status.png" "$COHORT_STATUS_SCREENSHOT"; fi

check "coordinator exits 0 on SIGTERM" stop_demo_coordinator
finish
