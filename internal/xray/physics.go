package xray

//go:generate sh -c "/usr/bin/python3 genphysics.py > physics_table.go && gofmt -w physics_table.go"

import (
	"math"
	"sort"
)

// Shell is an inner shell of an atom: its ionisation edge (keV) and
// fluorescence yield. Families K, L and M use the K, L3 and M5 shells.
type Shell struct {
	Edge, Yield float64
}

// Atom holds what quantification needs of an element (from xraylib).
type Atom struct {
	Symbol string
	Weight float64 // g/mol
	Shells map[string]Shell
}

// AtomOf returns the physics of the element with symbol sym.
func AtomOf(sym string) (Atom, bool) {
	for _, a := range physics {
		if a.Symbol == sym {
			return a, true
		}
	}
	return Atom{}, false
}

// MassAttenuation returns the mass attenuation coefficient (cm²/g) of
// element z (C, Al or Si: the detector's window and crystal) at e keV.
func MassAttenuation(z int, e float64) float64 {
	v, ok := attenuation[z]
	if !ok {
		return math.NaN()
	}
	g := attenuationGrid
	e = math.Min(math.Max(e, g[0]), g[len(g)-1])
	i := sort.SearchFloat64s(g, e)
	if i == 0 {
		return v[0]
	}
	// Log-log interpolation (smooth between edges).
	t := (math.Log(e) - math.Log(g[i-1])) / (math.Log(g[i]) - math.Log(g[i-1]))
	return math.Exp(math.Log(v[i-1]) + t*(math.Log(v[i])-math.Log(v[i-1])))
}
