// Package simulate writes realistic synthetic Velox EMD files with known
// ground truth: EDS spectrum images of nanoparticles of chosen elements on a
// support film, and HAADF movies of moving particles. The files load in our
// reader and in HyperSpy; the ground truth is written beside them as JSON.
package simulate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/scigolib/hdf5"

	"github.com/picoflow/picoflow/internal/analysis/hyperspectral"
	"github.com/picoflow/picoflow/internal/xray"
)

// Acquisition holds the instrument settings written into the metadata.
type Acquisition struct {
	Start         time.Time
	BeamEnergy    float64 // keV
	Magnification float64
	Dwell         float64 // s
	Tilt          float64 // deg
	Dispersion    float64 // keV per channel
	EnergyOffset  float64 // keV
}

func (a Acquisition) withDefaults() Acquisition {
	if a.Start.IsZero() {
		a.Start = time.Now().UTC().Truncate(time.Second)
	}
	if a.BeamEnergy == 0 {
		a.BeamEnergy = 300
	}
	if a.Magnification == 0 {
		a.Magnification = 225000
	}
	if a.Dwell == 0 {
		a.Dwell = 2e-6
	}
	if a.Dispersion == 0 {
		a.Dispersion = 0.01
	}
	if a.EnergyOffset == 0 {
		a.EnergyOffset = -0.25
	}
	return a
}

// Particle is one simulated particle (ground truth).
type Particle struct {
	Element string  `json:"element"`
	X       float64 `json:"x"` // pixels
	Y       float64 `json:"y"`
	Radius  float64 `json:"radius"`
}

// SpectrumImageSpec describes a synthetic spectrum image.
type SpectrumImageSpec struct {
	Width, Height int
	Channels      int
	// Support is the element of the film everywhere (e.g. "C").
	Support string
	// Elements are the particle elements; each particle is made of one.
	Elements []string
	// Particles is the number of particles. Defaults to 12.
	Particles int
	// CountsPerPixel is the mean number of X-ray events per pixel.
	CountsPerPixel float64
	Seed           uint64
	Acquisition    Acquisition
}

// SpectrumImageTruth is the ground truth written beside a spectrum image.
type SpectrumImageTruth struct {
	Kind      string     `json:"kind"`
	Elements  []string   `json:"elements"`
	Support   string     `json:"support"`
	Particles []Particle `json:"particles"`
	Events    int        `json:"events"`
	Width     int        `json:"width"`
	Height    int        `json:"height"`
	Channels  int        `json:"channels"`
}

// CountsForSize returns the mean counts per pixel that make a spectrum image
// of w×h pixels about bytes large (two bytes per event plus one gate pulse
// per pixel).
func CountsForSize(bytes int64, w, h int) float64 {
	return math.Max(float64(bytes)/2/float64(w*h)-1, 1)
}

// WriteSpectrumImage writes a Velox spectrum image to path and its ground
// truth to path + ".truth.json".
func WriteSpectrumImage(ctx context.Context, path string, spec SpectrumImageSpec) (*SpectrumImageTruth, error) {
	acq := spec.Acquisition.withDefaults()
	w, h := spec.Width, spec.Height
	if w <= 0 || h <= 0 || w*h > 1<<24 {
		return nil, fmt.Errorf("simulate: size %d×%d out of range", w, h)
	}
	if spec.Channels == 0 {
		spec.Channels = 4096
	}
	if spec.Particles == 0 {
		spec.Particles = 12
	}
	if spec.Support == "" {
		spec.Support = "C"
	}
	if spec.CountsPerPixel <= 0 {
		spec.CountsPerPixel = 50
	}
	all := append([]string{spec.Support}, spec.Elements...)
	for _, el := range all {
		if !xray.Known(el) {
			return nil, fmt.Errorf("simulate: unknown element %q", el)
		}
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	truth := &SpectrumImageTruth{Kind: "spectrum_image", Support: spec.Support, Width: w, Height: h, Channels: spec.Channels}
	truth.Elements = uniq(all)
	// Particles, each of one element, placed at random.
	minDim := float64(min(w, h))
	for i := 0; i < spec.Particles && len(spec.Elements) > 0; i++ {
		truth.Particles = append(truth.Particles, Particle{
			Element: spec.Elements[i%len(spec.Elements)],
			X:       rng.Float64() * float64(w), Y: rng.Float64() * float64(h),
			Radius: minDim * (0.03 + 0.05*rng.Float64()),
		})
	}
	// Class of each pixel: 0 = support only, k = particle element k.
	class := make([]uint8, w*h)
	for _, p := range truth.Particles {
		k := uint8(index(spec.Elements, p.Element) + 1)
		for y := max(0, int(p.Y-p.Radius)); y <= min(h-1, int(p.Y+p.Radius)); y++ {
			for x := max(0, int(p.X-p.Radius)); x <= min(w-1, int(p.X+p.Radius)); x++ {
				if dx, dy := float64(x)-p.X, float64(y)-p.Y; dx*dx+dy*dy <= p.Radius*p.Radius {
					class[y*w+x] = k
				}
			}
		}
	}
	// One spectrum shape per class; particles scatter 3× more X-rays.
	cal := hyperspectral.Calibration{Offset: acq.EnergyOffset, Scale: acq.Dispersion}
	cdfs := make([][]float64, len(spec.Elements)+1)
	rate := make([]float64, len(cdfs))
	for k := range cdfs {
		comp := map[string]float64{spec.Support: 1}
		rate[k] = spec.CountsPerPixel
		if k > 0 {
			comp = map[string]float64{spec.Support: 0.3, spec.Elements[k-1]: 1}
			rate[k] *= 3
		}
		cdfs[k] = cdf(spectrumShape(comp, spec.Channels, cal, acq.BeamEnergy))
	}
	// Normalise so the mean rate over the image is CountsPerPixel.
	var mean float64
	for _, c := range class {
		mean += rate[c]
	}
	mean /= float64(len(class))
	for k := range rate {
		rate[k] *= spec.CountsPerPixel / mean
	}
	events := make([]uint16, 0, int(float64(w*h)*(spec.CountsPerPixel+1)*1.01))
	haadf := make([]byte, 2*w*h)
	for i, c := range class {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		n := poisson(rng, rate[c])
		for j := 0; j < n; j++ {
			events = append(events, uint16(sort.SearchFloat64s(cdfs[c], rng.Float64())))
		}
		events = append(events, 65535)
		z := 6.0
		if c > 0 {
			z = float64(zOf(spec.Elements[c-1]))
		}
		v := 200 + 8*math.Pow(z, 1.7) + 20*rng.NormFloat64()
		binary.LittleEndian.PutUint16(haadf[2*i:], uint16(math.Max(0, math.Min(65534, v))))
	}
	truth.Events = len(events) - w*h
	pixel := 2e-9
	md := veloxMetadata(acq, "HAADF", pixel, w, h, acq.Dwell*float64(w*h))
	vw, err := newVeloxWriter(path)
	if err != nil {
		return nil, err
	}
	if _, err := vw.image("HAADF", hdf5.Uint16, haadf, h, w, 1, md); err != nil {
		vw.Close()
		return nil, err
	}
	if err := vw.stream(events, spec.Channels, 1, w, h, veloxMetadata(acq, "SuperXG2", pixel, w, h, acq.Dwell*float64(w*h))); err != nil {
		vw.Close()
		return nil, err
	}
	if err := vw.Close(); err != nil {
		return nil, fmt.Errorf("simulate: close %s: %w", path, err)
	}
	return truth, writeTruth(path, truth)
}

// spectrumShape models an EDS spectrum: a Kramers bremsstrahlung continuum
// (∝ (E0−E)/E, damped below 1 keV by absorption) plus Gaussian lines with
// the detector resolution.
func spectrumShape(comp map[string]float64, channels int, cal hyperspectral.Calibration, e0 float64) []float64 {
	s := make([]float64, channels)
	for i := range s {
		e := cal.Offset + float64(i)*cal.Scale
		if e > 0.1 && e < e0 {
			s[i] = 0.02 * (e0 - e) / e * (1 - math.Exp(-e/0.6)) * cal.Scale / 0.01
		}
	}
	for el, c := range comp {
		for _, l := range xray.ElementLines(el) {
			if l.Energy > e0*0.9 || l.Energy < 0.1 || l.Weight < 0.02 {
				continue
			}
			sig := hyperspectral.FWHM(l.Energy, 0.130) / 2.3548
			// Main lines of a family are comparable: K lines are a little
			// stronger than L and M in thin specimens.
			amp := c * l.Weight * 60
			if l.Family() != "K" {
				amp *= 0.6
			}
			for i := range s {
				e := cal.Offset + float64(i)*cal.Scale
				if d := (e - l.Energy) / sig; d > -5 && d < 5 {
					s[i] += amp * math.Exp(-d*d/2) * cal.Scale / (sig * math.Sqrt(2*math.Pi))
				}
			}
		}
	}
	return s
}

func cdf(s []float64) []float64 {
	out := make([]float64, len(s))
	var acc float64
	for i, v := range s {
		acc += v
		out[i] = acc
	}
	for i := range out {
		out[i] /= acc
	}
	return out
}

func poisson(rng *rand.Rand, lambda float64) int {
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func zOf(el string) int {
	if ls := xray.ElementLines(el); len(ls) > 0 {
		return ls[0].Z
	}
	return 6
}

func index(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

func writeTruth(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path+".truth.json", b, 0o644)
}
