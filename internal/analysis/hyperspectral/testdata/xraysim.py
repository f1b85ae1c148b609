"""Independent EDS simulator for picoflow's accuracy tests.

The physics comes from xraylib (Debian's python3-xraylib), not from
picoflow's line table: line energies, radiative rates, fluorescence yields,
edge energies, atomic weights and mass attenuation. On top: a Bethe-type
electron ionisation cross section, Kramers bremsstrahlung, a Si drift
detector (polymer window and Si crystal absorption, Fano-broadened
Gaussians), Si escape peaks, sum (pile-up) peaks, the zero (strobe) peak and
Poisson noise.

usage: xraysim.py OUT.npz SEED SPEC_JSON

SPEC_JSON: {"elements": ["Ti", "V"], "support": "C", "ny": 48, "nx": 48,
            "counts": 100, "beam_kev": 200, "channels": 2048,
            "scale": 0.01, "offset": -0.1, "particles": 3}

Writes OUT.npz (uncompressed) with cube (ny, nx, channels) uint16, conc
(ny, nx, nel) float32 true mass fractions per pixel, and meta, a JSON
document (elements in conc order, energy scale and offset, beam energy) as
uint8 bytes.
"""
import json
import sys

import numpy as np
import xraylib as xl

K_LINES = ["KL3", "KL2", "KM3", "KM2", "KN3", "KN2"]
L_LINES = ["L3M5", "L3M4", "L3N5", "L3N4", "L3N1", "L3M1", "L2M4", "L2N4", "L2M1", "L1M3", "L1M2", "L1N3", "L1N2", "L2O4", "L3O4O5"]
M_LINES = ["M5N7", "M5N6", "M4N6", "M3N5", "M4N2", "M5N3"]
SHELLS = {"K": xl.K_SHELL, "L1": xl.L1_SHELL, "L2": xl.L2_SHELL, "L3": xl.L3_SHELL,
          "M1": xl.M1_SHELL, "M2": xl.M2_SHELL, "M3": xl.M3_SHELL, "M4": xl.M4_SHELL, "M5": xl.M5_SHELL}


def line_const(name):
    return getattr(xl, name + "_LINE", None)


def shell_of(line):
    for s in ("L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5"):
        if line.startswith(s):
            return s
    return "K"


def ionisation(edge, e0):
    """Bethe-type cross section (arbitrary units): ln(U) / (U * Ec^2)."""
    u = e0 / edge
    if u <= 1.0:
        return 0.0
    return np.log(u) / (u * edge * edge)


def efficiency(e):
    """SDD efficiency: 0.1 um C-polymer window, 30 nm Al, 0.45 mm Si."""
    e = np.maximum(np.asarray(e, dtype=float), 0.1)
    out = np.empty_like(e)
    for i, en in enumerate(e):
        win = np.exp(-xl.CS_Total(6, en) * 1.4 * 1e-5 - xl.CS_Total(13, en) * 2.7 * 3e-6)
        det = 1.0 - np.exp(-xl.CS_Total(14, en) * 2.33 * 0.045)
        dead = np.exp(-xl.CS_Total(14, en) * 2.33 * 2e-6)
        out[i] = win * det * dead
    return out


def fwhm(e):
    """Noise 55 eV, Fano 0.115, 3.76 eV per pair: about 129 eV at Mn Ka."""
    return np.sqrt(0.055 ** 2 + 2.3548 ** 2 * 0.00376 * 0.115 * np.maximum(e, 0.0))


def element_lines(z, e0):
    """(energy keV, relative intensity per unit mass fraction) of every line."""
    out = []
    for family, names in (("K", K_LINES), ("L", L_LINES), ("M", M_LINES)):
        for name in names:
            const = line_const(name)
            if const is None:
                continue
            try:
                en = xl.LineEnergy(z, const)
                rate = xl.RadRate(z, const)
                shell = shell_of(name)
                edge = xl.EdgeEnergy(z, SHELLS[shell])
                omega = xl.FluorYield(z, SHELLS[shell])
            except ValueError:
                continue
            if en <= 0.1 or rate <= 0 or omega <= 0 or edge >= e0:
                continue
            # Subshell occupancy weights the L and M shells roughly.
            occ = {"K": 2, "L1": 2, "L2": 2, "L3": 4, "M1": 2, "M2": 2, "M3": 4, "M4": 4, "M5": 6}[shell]
            out.append((en, occ * ionisation(edge, e0) * omega * rate / xl.AtomicWeight(z)))
    return out


def unit_spectrum(z, e0, energies, scale):
    """Expected counts per channel of element z at unit mass fraction."""
    spec = np.zeros_like(energies)
    lines = element_lines(z, e0)
    eff_at = efficiency([en for en, _ in lines]) if lines else []
    for (en, w), eff in zip(lines, eff_at):
        s = fwhm(en) / 2.3548
        spec += w * eff * scale / (s * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((energies - en) / s) ** 2)
        if en > 1.84:
            # Si escape: a line at E - 1.74 keV, about 1 % near 2 keV, less above.
            esc = en - 1.7398
            p = 0.012 * (1.84 / en) ** 2
            se = fwhm(esc) / 2.3548
            spec += p * w * eff * scale / (se * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((energies - esc) / se) ** 2)
    return spec


def main():
    out, seed, spec = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    rng = np.random.default_rng(seed)
    ny, nx = spec.get("ny", 48), spec.get("nx", 48)
    nch, scale, offset = spec.get("channels", 2048), spec.get("scale", 0.01), spec.get("offset", -0.1)
    e0 = spec.get("beam_kev", 200.0)
    energies = offset + scale * (np.arange(nch) + 0.0)
    elements = list(spec["elements"])
    support = spec.get("support")
    names = elements + ([support] if support and support not in elements else [])
    zs = [xl.SymbolToAtomicNumber(s) for s in names]
    units = np.array([unit_spectrum(z, e0, energies, scale) for z in zs])  # (nel, nch)
    # Concentration maps: particles of each element on a support film; a
    # homogeneous alloy region where all elements mix (for quantification).
    conc = np.zeros((ny, nx, len(names)))
    yy, xx = np.mgrid[0:ny, 0:nx]
    npart = spec.get("particles", 3)
    for k in range(len(elements)):
        for _ in range(npart):
            r = rng.uniform(0.08, 0.16) * min(ny, nx)
            cy, cx = rng.uniform(r, ny - r), rng.uniform(r, nx - r)
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
            conc[disc, k] = np.maximum(conc[disc, k], rng.uniform(0.6, 1.0))
    mix = spec.get("alloy")  # true weight fractions of an alloy block
    if mix:
        block = (slice(0, ny // 4), slice(0, nx // 4))
        conc[block] = 0
        for k, el in enumerate(elements):
            conc[block + (k,)] = mix[el]
    if support and support not in elements:
        conc[..., -1] = np.clip(1.0 - conc[..., :-1].sum(axis=2), 0.05, 1.0)
    # Normalise to mass fractions where particles overlap.
    tot = conc.sum(axis=2, keepdims=True)
    conc = np.where(tot > 1, conc / tot, conc)
    # Expected characteristic spectrum per pixel, plus bremsstrahlung.
    zbar = (conc * np.array(zs)).sum(axis=2)  # (ny, nx)
    brems_shape = np.where(energies > 0.05, np.maximum(e0 - energies, 0) / np.maximum(energies, 0.05), 0) * efficiency(energies)
    char = conc.reshape(-1, len(names)) @ units  # (npix, nch)
    mean_char = char.sum(axis=1).mean()
    brems = zbar.reshape(-1, 1) * brems_shape[None, :]
    brems *= 0.6 * mean_char / max(brems.sum(axis=1).mean(), 1e-30)  # continuum about 40 % of counts
    lam = char + brems
    lam *= spec.get("counts", 100) / lam.sum(axis=1).mean()
    # Sum peaks: two photons in one pulse, about 2e-4 of the pairs.
    mean = lam.sum(axis=0)
    p = mean / mean.sum()
    z0 = int(round(-offset / scale))
    pile = np.convolve(p, p)[z0: z0 + nch]
    lam += 2e-4 * lam.sum(axis=1, keepdims=True) * pile[None, :]
    cube = rng.poisson(lam).astype(np.uint16).reshape(ny, nx, nch)
    # The zero (strobe) peak: about 30 events per pixel at 0 keV.
    if 0 <= z0 < nch:
        strobe = rng.poisson(spec.get("strobe", 30), size=(ny, nx))
        for px in np.ndindex(ny, nx):
            ch = np.clip(np.round(z0 + rng.normal(0, 0.017 / scale, strobe[px])).astype(int), 0, nch - 1)
            np.add.at(cube[px], ch, 1)
    meta = json.dumps({"elements": names, "scale": scale, "offset": offset, "beam_kev": e0})
    np.savez(out, cube=cube, conc=conc.astype(np.float32), meta=np.frombuffer(meta.encode(), dtype=np.uint8))


if __name__ == "__main__":
    main()
