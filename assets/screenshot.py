#!/usr/bin/env python3
"""Render a tmux pane to PNG, as the README's console screenshots are made.

    tmux capture-pane -t SESSION -e -p > pane.ansi
    python3 assets/screenshot.py pane.ansi assets/console-NAME.png

Reads the pane's text with its SGR colour codes (16, 256 and true colour, bold, reverse) and
draws it with DejaVu Sans Mono. Needs Pillow (`pip install pillow`).
"""

import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 14
BG = (24, 24, 28)
FG = (220, 220, 220)
BASE16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


def parse(line):
    """Yield (char, fg, bg, bold) for one line of ANSI text."""
    fg, bg, bold, rev = None, None, False, False
    i = 0
    for m in re.finditer(r"\x1b\[([0-9;:]*)m|([^\x1b])", line):
        if m.group(2) is not None:
            f, b = (bg, fg) if rev else (fg, bg)
            yield m.group(2), f, b, bold
            continue
        codes = [int(c) if c else 0 for c in re.split("[;:]", m.group(1))]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                fg, bg, bold, rev = None, None, False, False
            elif c == 1:
                bold = True
            elif c == 22:
                bold = False
            elif c == 7:
                rev = True
            elif c == 27:
                rev = False
            elif 30 <= c <= 37:
                fg = BASE16[c - 30]
            elif 90 <= c <= 97:
                fg = BASE16[c - 90 + 8]
            elif 40 <= c <= 47:
                bg = BASE16[c - 40]
            elif 100 <= c <= 107:
                bg = BASE16[c - 100 + 8]
            elif c == 39:
                fg = None
            elif c == 49:
                bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    col = xterm256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    col = tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    col = None
                if c == 38:
                    fg = col
                else:
                    bg = col
            i += 1


def main():
    src, dst = sys.argv[1], sys.argv[2]
    lines = open(src, encoding="utf-8", errors="replace").read().rstrip("\n").split("\n")
    font = ImageFont.truetype(FONT, SIZE)
    bold_font = ImageFont.truetype(BOLD, SIZE)
    cw = round(font.getlength("M"))
    ch = SIZE + 3
    cols = max(sum(1 for _ in parse(l)) for l in lines)
    img = Image.new("RGB", (cols * cw + 16, len(lines) * ch + 16), BG)
    d = ImageDraw.Draw(img)
    for row, line in enumerate(lines):
        for col, (c, fg, bg, bold) in enumerate(parse(line)):
            x, y = 8 + col * cw, 8 + row * ch
            if bg is not None:
                d.rectangle([x, y, x + cw - 1, y + ch - 1], fill=bg)
            if c != " ":
                d.text((x, y), c, fill=fg or FG, font=bold_font if bold else font)
    img.save(dst)


if __name__ == "__main__":
    main()
