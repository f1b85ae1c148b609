package chart

import (
	"errors"
	"image/color"
	"math"

	"gonum.org/v1/plot/palette"
)

// viridisStops samples matplotlib's viridis at 9 evenly spaced points.
var viridisStops = []color.NRGBA{
	{68, 1, 84, 255}, {71, 44, 122, 255}, {59, 81, 139, 255}, {44, 113, 142, 255},
	{33, 144, 141, 255}, {39, 173, 129, 255}, {92, 200, 99, 255}, {170, 220, 50, 255},
	{253, 231, 37, 255},
}

// Ramp is a palette.ColorMap that interpolates linearly between stops.
type Ramp struct {
	Stops    []color.NRGBA
	min, max float64
	alpha    float64
}

var _ palette.ColorMap = (*Ramp)(nil)

// Viridis returns the perceptually uniform viridis colour map.
func Viridis() *Ramp { return &Ramp{Stops: viridisStops, max: 1, alpha: 1} }

// Mono returns a black-to-c ramp, used for element maps.
func Mono(c color.NRGBA) *Ramp {
	return &Ramp{Stops: []color.NRGBA{{0, 0, 0, 255}, c}, max: 1, alpha: 1}
}

// NRGBA maps v to a colour without allocation; values outside [min, max]
// are clamped.
func (r *Ramp) NRGBA(v float64) color.NRGBA {
	t := 0.0
	if r.max > r.min {
		t = (v - r.min) / (r.max - r.min)
	}
	if !(t > 0) { // also NaN
		t = 0
	}
	if t > 1 {
		t = 1
	}
	f := t * float64(len(r.Stops)-1)
	i := int(f)
	if i >= len(r.Stops)-1 {
		return r.Stops[len(r.Stops)-1]
	}
	a, b, w := r.Stops[i], r.Stops[i+1], f-float64(i)
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-w) + float64(y)*w)) }
	return color.NRGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), uint8(255 * r.alpha)}
}

// At implements palette.ColorMap.
func (r *Ramp) At(v float64) (color.Color, error) {
	if r.max <= r.min {
		return nil, errors.New("chart: colour map range is empty")
	}
	return r.NRGBA(v), nil
}

func (r *Ramp) Max() float64       { return r.max }
func (r *Ramp) SetMax(v float64)   { r.max = v }
func (r *Ramp) Min() float64       { return r.min }
func (r *Ramp) SetMin(v float64)   { r.min = v }
func (r *Ramp) Alpha() float64     { return r.alpha }
func (r *Ramp) SetAlpha(a float64) { r.alpha = a }
func (r *Ramp) Palette(n int) palette.Palette {
	cs := make([]color.Color, n)
	for i := range cs {
		cs[i] = r.NRGBA(r.min + (r.max-r.min)*float64(i)/float64(max(n-1, 1)))
	}
	return pal(cs)
}

type pal []color.Color

func (p pal) Colors() []color.Color { return p }
