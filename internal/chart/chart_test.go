package chart

import (
	"bytes"
	"image/color"
	"image/png"
	"testing"
)

func TestRoundLength(t *testing.T) {
	for _, tc := range []struct {
		v     float64
		units string
		n     float64
		label string
	}{
		{51.2, "nm", 50, "50 nm"},
		{19, "nm", 10, "10 nm"},
		{2600, "nm", 2000, "2 µm"},
		{0.37, "µm", 0.2, "0.2 µm"},
	} {
		if n, l := RoundLength(tc.v, tc.units); n != tc.n || l != tc.label {
			t.Errorf("%g %s: %g %q, want %g %q", tc.v, tc.units, n, l, tc.n, tc.label)
		}
	}
	for _, tk := range (niceTicks{}).Ticks(0, 12500) {
		if tk.Label != "" && bytes.ContainsRune([]byte(tk.Label), '.') {
			t.Errorf("tick label %q", tk.Label)
		}
	}
}

// TestOverlay: each channel lands in its colour, scaled to its own top.
func TestOverlay(t *testing.T) {
	red, green := make([]float64, 16), make([]float64, 16)
	red[0], green[15] = 5, 500 // different scales, both saturate
	var buf bytes.Buffer
	err := Overlay(&buf, OverlaySpec{Title: "t", NY: 4, NX: 4, X: Calib{Scale: 1, Units: "nm"}, Y: Calib{Scale: 1, Units: "nm"},
		Channels: []Channel{{Name: "Fe K", Data: red, Color: color.NRGBA{255, 0, 0, 255}}, {Name: "Cu K", Data: green, Color: color.NRGBA{0, 255, 0, 255}}}, ClipHigh: 100})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Count strongly red and strongly green pixels in the figure: both
	// channels drew their pixel.
	var reds, greens int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r > 0xE000 && g < 0x2000 && bl < 0x2000 {
				reds++
			}
			if g > 0xE000 && r < 0x2000 && bl < 0x2000 {
				greens++
			}
		}
	}
	if reds < 1000 || greens < 1000 {
		t.Errorf("red pixels %d, green %d", reds, greens)
	}
	if err := Overlay(&buf, OverlaySpec{NY: 4, NX: 4, Channels: make([]Channel, 4)}); err == nil {
		t.Error("four channels accepted")
	}
}

// TestMapPixels: the map's pixels are drawn square (the raster's aspect
// within 1 % of the data's) and the colour bar lies beside the data, never
// over it.
func TestMapPixels(t *testing.T) {
	magenta := color.NRGBA{255, 0, 255, 255}
	for _, tc := range []struct{ nx, ny int }{{100, 100}, {60, 120}, {160, 40}} {
		data := make([]float64, tc.nx*tc.ny)
		for i := range data {
			data[i] = 10 // every data pixel at the top of the scale: magenta
		}
		data[0] = 0
		var buf bytes.Buffer
		if err := Map(&buf, MapSpec{Title: "t", Data: data, NX: tc.nx, NY: tc.ny, X: Calib{Scale: 1, Units: "nm"}, Y: Calib{Scale: 1, Units: "nm"},
			Label: "counts", Colors: Mono(magenta)}); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		isMagenta := func(x, y int) bool {
			r, g, bl, _ := img.At(x, y).RGBA()
			return r>>8 > 250 && g>>8 < 5 && bl>>8 > 250
		}
		cols := make([]int, b.Dx())
		best := 0
		for x := b.Min.X; x < b.Max.X; x++ {
			for y := b.Min.Y; y < b.Max.Y; y++ {
				if isMagenta(x, y) {
					cols[x-b.Min.X]++
				}
			}
			best = max(best, cols[x-b.Min.X])
		}
		x0, x1 := -1, -1
		for x, n := range cols {
			if n > best/2 {
				if x0 < 0 {
					x0 = x
				}
				x1 = x
			}
		}
		y0, y1 := -1, -1
		for y := b.Min.Y; y < b.Max.Y; y++ {
			if isMagenta(x0+(x1-x0)/2, y) {
				if y0 < 0 {
					y0 = y
				}
				y1 = y
			}
		}
		w, h := float64(x1-x0+1), float64(y1-y0+1)
		if got, want := w/h, float64(tc.nx)/float64(tc.ny); got/want < 0.99 || got/want > 1.01 {
			t.Errorf("%dx%d: raster %gx%g px, aspect %.3f, want %.3f", tc.nx, tc.ny, w, h, got, want)
		}
		// The colour bar: columns right of the raster with the ramp's
		// pinks; none may fall inside the raster's columns.
		for x := b.Min.X; x < b.Max.X; x++ {
			if x >= x0 && x <= x1 {
				continue
			}
			ramp := 0
			for y := b.Min.Y; y < b.Max.Y; y++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				if r == bl && g>>8 < 5 && r>>8 > 20 && r>>8 < 250 {
					ramp++
				}
			}
			if ramp > 50 && x < x1 {
				t.Errorf("%dx%d: colour bar column %d left of the raster's right edge %d", tc.nx, tc.ny, x, x1)
			}
		}
	}
}
