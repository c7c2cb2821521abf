"""Prints the CPU time (ms, median) thumbor's own JPEG decode of PHOTO takes when the photo is
asked for WIDTH px wide: Pillow's libjpeg-turbo with the same draft (DCT scaling) thumbor's
PIL engine asks for. Any server that decodes this photo with libjpeg spends at least as much
on it, so thumbor's CPU per request divided by this is the most such a server can gain.

Usage: python pillow-decode.py PHOTO WIDTH
"""

import statistics
import sys
import time

from PIL import Image

path, width = sys.argv[1], int(sys.argv[2])
with Image.open(path) as image:
    size = (width, round(width * image.height / image.width))
    pixels = image.width * image.height
# Enough decodes for a steady median, a few seconds at most.
runs = max(5, min(25, 100_000_000 // pixels))
times = []
for _ in range(runs):
    start = time.process_time()
    with Image.open(path) as image:
        image.draft(None, size)
        image.load()
    times.append(time.process_time() - start)
print(f"{1000 * statistics.median(times):.1f}")
