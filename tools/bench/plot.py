#!/usr/bin/env python3
"""Mpps by packet size per scenario, from egress-bench --json, as a small SVG for the README.

    python3 tools/bench/plot.py bench.json docs/bench.svg

One group of bars per scenario, one bar per packet size; a tick over a bar marks the
reference it ran against (the raw AEAD ceiling for tunnels, direct forwarding for
direct-snat), so the gap between bar and tick is what the worker costs beyond the crypto.
Standard library only: the appliance's hosts need no plotting stack.
"""
import json
import sys
from xml.sax.saxutils import escape

SIZE_COLOURS = {"64": "#4e79a7", "512": "#f28e2b", "1420": "#59a14f", "imix": "#b07aa1"}
WIDTH, HEIGHT = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 110


def nice_top(value):
    """The smallest 1, 2 or 5 times a power of ten at or above value."""
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for m in (1, 2, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def plot(doc):
    rows = doc["results"]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    by = {(r["scenario"], r["size"]): r for r in rows}
    peak = max([r["mpps"] for r in rows] + [r.get("reference_mpps", 0) for r in rows] + [1])
    top = nice_top(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / len(scenarios)
    bar_w = group_w * 0.8 / len(sizes)

    def y(v):
        return TOP + plot_h * (1 - min(v, top) / top)

    # The bars are every worker's rate added up: say how many there were.
    workers = sorted({r.get("workers", 1) for r in rows})
    on = ("one worker" if workers == [1] else
          f'{workers[0]} workers' if len(workers) == 1 else f'{workers[0]}-{workers[-1]} workers')
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14">egress-bench: Mpps on {on} by frame size '
           f'(ticks: the reference, {escape(doc.get("mode", "ceiling"))})</text>']
    for i in range(6):
        v = top * i / 5
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for gi, s in enumerate(scenarios):
        x0 = LEFT + gi * group_w + group_w * 0.1
        for si, z in enumerate(sizes):
            r = by.get((s, z))
            if not r:
                continue
            x = x0 + si * bar_w
            out.append(f'<rect x="{x:.1f}" y="{y(r["mpps"]):.1f}" width="{bar_w - 1:.1f}" '
                       f'height="{TOP + plot_h - y(r["mpps"]):.1f}" fill="{SIZE_COLOURS.get(z, "#999")}">'
                       f'<title>{escape(s)} {escape(z)}: {r["mpps"]:.2f} Mpps</title></rect>')
            ref = r.get("reference_mpps", 0)
            if ref > 0:
                out.append(f'<line x1="{x:.1f}" x2="{x + bar_w - 1:.1f}" y1="{y(ref):.1f}" y2="{y(ref):.1f}" '
                           f'stroke="black" stroke-width="2"><title>reference {ref:.2f} Mpps</title></line>')
        cx = LEFT + gi * group_w + group_w / 2
        out.append(f'<text transform="translate({cx:.1f},{TOP + plot_h + 12}) rotate(35)" '
                   f'text-anchor="start">{escape(s)}</text>')
    out.append(f'<text transform="translate(16,{TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">Mpps</text>')
    for si, z in enumerate(sizes):
        x = WIDTH - RIGHT - (len(sizes) - si) * 80
        out.append(f'<rect x="{x}" y="30" width="12" height="12" fill="{SIZE_COLOURS.get(z, "#999")}"/>'
                   f'<text x="{x + 16}" y="40">{escape(z)}{"" if z == "imix" else " B"}</text>')
    out.append('</svg>')
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py BENCH.json OUT.svg")
    try:
        with open(sys.argv[1]) as f:
            doc = json.load(f)
        if not doc.get("results"):
            sys.exit(f"plot.py: {sys.argv[1]}: no results")
    except (OSError, ValueError) as e:
        sys.exit(f"plot.py: {sys.argv[1]}: {e}")
    with open(sys.argv[2], "w") as f:
        f.write(plot(doc))


if __name__ == "__main__":
    main()
