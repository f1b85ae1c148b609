#!/usr/bin/python3
"""An independent HAADF movie generator for the particle detector's tests.

Its image model differs on purpose from internal/simulate (Gaussian blobs on
a flat background): gold particles as projected spheres, faceted hexagons and
thin rafts on a textured amorphous carbon film, scan-line noise, low-dose
shot noise, beam-current jumps, drift and Brownian motion, particles that
nucleate, dissolve, touch and coalesce. It writes the frames as raw
little-endian float64 (T*H*W) and the ground truth as JSON.

usage: moviesim.py SEED FRAMES SIZE OUT_PREFIX [dissolve]

With "dissolve", some particles shrink from a frame on until they are gone
(Ostwald ripening), each a "dissolution" event in the frame it is gone in;
without it no particle dissolves (and the movie is the one it always was).
"""
import json
import sys

import numpy as np
from scipy import ndimage

seed, frames, size, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dissolve = sys.argv[5:] == ["dissolve"]
rng = np.random.default_rng(seed)
H = W = size

# The carbon film: amorphous texture at two scales, fixed to the specimen
# (it drifts with it).
pad = 16
film = ndimage.gaussian_filter(rng.normal(size=(H + 2 * pad, W + 2 * pad)), 1.2) * 6 + \
    ndimage.gaussian_filter(rng.normal(size=(H + 2 * pad, W + 2 * pad)), 6) * 25
film = 40 + film - film.min()

yy, xx = np.mgrid[0:H, 0:W].astype(float)


def particle(kind, x, y, r, angle):
    """Projected thickness (a.u.) of one particle, on the window of the
    frame grid around it: (thickness, (row slice, column slice))."""
    y0, y1 = max(int(y - r) - 2, 0), min(int(y + r) + 3, H)
    x0, x1 = max(int(x - r) - 2, 0), min(int(x + r) + 3, W)
    win = (slice(y0, y1), slice(x0, x1))
    return _thickness(kind, xx[win] - x, yy[win] - y, r, angle), win


def _thickness(kind, dx, dy, r, angle):
    d2 = dx * dx + dy * dy
    if kind == "sphere":
        return np.sqrt(np.clip(r * r - d2, 0, None)) / max(r, 1e-6) * r
    if kind == "raft":  # thin and flat: low contrast, sharp edge
        return np.where(d2 <= r * r, 0.35 * r, 0.0)
    # faceted: a hexagon, thickness growing inwards from its edges
    a = np.arctan2(dy, dx) - angle
    sector = np.mod(a, np.pi / 3) - np.pi / 6
    edge = r * np.cos(np.pi / 6) / np.cos(sector)
    inside = np.sqrt(d2) <= edge
    return np.where(inside, np.clip(edge - np.sqrt(d2), 0, None) * 0.9 + 0.4 * r, 0.0)


kinds = ["sphere", "faceted", "raft"]
particles = []
next_id = 0


def new_particle(x, y, r, t0, grow=0.0, end=None):
    global next_id
    p = {"id": next_id, "x": x, "y": y, "r": r, "kind": kinds[rng.integers(3)] if r >= 2.5 else "sphere",
         "angle": rng.uniform(0, np.pi), "t0": t0, "grow": grow, "end": end, "alive": True}
    next_id += 1
    particles.append(p)
    return p


# Particles of every size, some in touching pairs, some that will merge.
for _ in range(int(size * size / 2200)):
    new_particle(rng.uniform(12, W - 12), rng.uniform(12, H - 12), rng.choice([1.6, 1.8, 2.2, 2.6, 3.2, 4.0, 5.0, 7.0]), 0)
for _ in range(int(size * size / 16000)):  # touching pairs
    x, y, r = rng.uniform(20, W - 20), rng.uniform(20, H - 20), rng.uniform(3, 5)
    new_particle(x, y, r, 0)
    new_particle(x + 2 * r + 0.5, y + rng.uniform(-1, 1), rng.uniform(3, 5), 0)
for _ in range(int(size * size / 30000)):  # pairs that coalesce
    x, y = rng.uniform(25, W - 25), rng.uniform(25, H - 25)
    a, b = new_particle(x, y, 3.5, 0), new_particle(x + 9, y, 3.0, 0)
    a["merge_with"], b["merge_with"] = b["id"], a["id"]

if dissolve:  # small particles on their own that shrink away
    lone = [p for p in particles if p["r"] <= 3.2 and "merge_with" not in p]
    for i in rng.choice(len(lone), size=min(len(lone), int(size * size / 20000)), replace=False):
        lone[i]["shrink"] = rng.uniform(0.08, 0.15)  # px per frame
        lone[i]["shrink_from"] = int(rng.integers(3, frames // 3))

drift = rng.uniform(-1, 1, 2)
drift = drift / np.hypot(*drift) * rng.uniform(4, 10) / frames  # px per frame
dose = rng.uniform(15, 40)  # electrons per pixel at unit intensity
current = 1.0
truth = []
events = []
stack = np.empty((frames, H, W))
for t in range(frames):
    if rng.random() < 0.03:
        current *= rng.choice([0.8, 1.25])  # a beam-current jump
    if t in (frames // 5, frames // 2):  # nucleation
        for _ in range(3):
            new_particle(rng.uniform(12, W - 12), rng.uniform(12, H - 12), 1.2, t, grow=0.08)
            events.append({"type": "nucleation", "frame": t, "id": next_id - 1})
    off = drift * t
    img = np.zeros((H, W))
    # The film, shifted with the drift (whole and sub-pixel).
    img += ndimage.shift(film, (off[1], off[0]), order=1)[pad:pad + H, pad:pad + W]
    visible = []
    for p in particles:
        if not p["alive"] or t < p["t0"]:
            continue
        p["x"] += rng.normal(0, 0.25)
        p["y"] += rng.normal(0, 0.25)
        p["r"] = min(p["r"] + p["grow"], 6.0)
        if "shrink" in p and t >= p["shrink_from"]:
            p["r"] -= p["shrink"]
            if p["r"] < 0.5:
                p["alive"] = False
                events.append({"type": "dissolution", "frame": t, "id": p["id"]})
                continue
        m = p.get("merge_with")
        if m is not None and t > frames // 3:
            q = next(o for o in particles if o["id"] == m)
            if q["alive"]:  # approach, then merge into one (volume kept)
                dx, dy = q["x"] - p["x"], q["y"] - p["y"]
                d = np.hypot(dx, dy)
                if d > p["r"] + q["r"] - 1:
                    p["x"] += 0.25 * dx / d
                    p["y"] += 0.25 * dy / d
                elif p["id"] < q["id"]:
                    p["r"] = (p["r"] ** 3 + q["r"] ** 3) ** (1 / 3)
                    p["x"], p["y"] = (p["x"] + q["x"]) / 2, (p["y"] + q["y"]) / 2
                    q["alive"] = False
                    p.pop("merge_with")
                    events.append({"type": "merge", "frame": t, "into": p["id"], "gone": q["id"]})
        x, y = p["x"] + off[0], p["y"] + off[1]
        if not (3 < x < W - 3 and 3 < y < H - 3):
            continue
        th, win = particle(p["kind"], x, y, p["r"], p["angle"])
        img[win] += 60 * th  # gold's Z contrast over the film
        visible.append({"id": p["id"], "x": x, "y": y, "r": p["r"], "kind": p["kind"]})
    # Low-dose shot noise, then scan-line offsets.
    counts = rng.poisson(np.clip(img * current * dose / 60, 0, None)).astype(float)
    counts += rng.normal(0, 0.6 * np.sqrt(dose), size=(H, 1))
    # Each particle's local signal-to-noise: its peak above the film around
    # it, over the noise of that film.
    for v in visible:
        x0, x1 = int(max(v["x"] - 3 * v["r"] - 4, 0)), int(min(v["x"] + 3 * v["r"] + 5, W))
        y0, y1 = int(max(v["y"] - 3 * v["r"] - 4, 0)), int(min(v["y"] + 3 * v["r"] + 5, H))
        win = counts[y0:y1, x0:x1]
        ring = np.hypot(xx[y0:y1, x0:x1] - v["x"], yy[y0:y1, x0:x1] - v["y"]) > v["r"] + 2
        core = np.hypot(xx[y0:y1, x0:x1] - v["x"], yy[y0:y1, x0:x1] - v["y"]) <= max(v["r"] * 0.6, 1)
        bg = win[ring]
        v["snr"] = float((win[core].mean() - bg.mean()) / max(bg.std(), 1e-6)) if bg.size > 8 and core.any() else 0.0
    stack[t] = counts
    truth.append(visible)

stack.astype("<f8").tofile(out + ".f64")
with open(out + ".json", "w") as f:
    json.dump({"frames": frames, "height": H, "width": W, "truth": truth, "events": events}, f)
